"""The README's ``python`` blocks and the examples pass ``mypy --strict``.

A reader copies them into a typed code base; what they show must type-check there as it runs.
(``py`` blocks are fragments, as ``tests/docs/test_readme.py`` says, and are not checked.)
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.mypy_check import mypy_strict

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_readme_python_blocks_and_examples_pass_mypy_strict(tmp_path: Path) -> None:
    blocks = BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "the README has no python blocks"
    files = []
    for index, code in enumerate(blocks):
        path = (
            tmp_path / f"readme_block_{index}.py"
        )  # one module each: names may repeat
        path.write_text(code, encoding="utf-8")
        files.append(path)
    examples = sorted((ROOT / "examples").glob("*.py"))
    assert examples
    proc = mypy_strict(tmp_path, *files, *examples)
    assert proc.returncode == 0, proc.stdout + proc.stderr
