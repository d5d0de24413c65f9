"""The README is also the package index page: its links must work there too.

The index shows the README without the repository around it, so a link to a file must be an
absolute URL into the repository named in ``pyproject.toml``; ``#anchors`` stay relative.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
LINK = re.compile(r"\]\(([^)\s]+)\)")
SOURCE = re.search(
    r'^Source = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE
)


def _github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_file_links_are_absolute_urls_into_the_repository() -> None:
    assert SOURCE is not None
    blob = SOURCE.group(1) + "/blob/main/"
    targets = LINK.findall(README)
    files = [t for t in targets if not t.startswith("#")]
    assert files, "expected links to the examples and the license"
    for target in files:
        assert target.startswith("https://"), f"relative link {target!r}"
        if target.startswith(blob):
            path = target[len(blob) :]
            assert (ROOT / path).is_file(), f"{target} names no file of the repository"


def test_anchors_name_headings_of_the_readme() -> None:
    headings = re.findall(r"^#{1,6} (.+)$", README, re.MULTILINE)
    slugs = {_github_slug(h) for h in headings}
    anchors = [t[1:] for t in LINK.findall(README) if t.startswith("#")]
    assert anchors
    for anchor in anchors:
        assert anchor in slugs, f"#{anchor} names no heading"
