"""One version for the distribution, both packages and both command lines."""

from __future__ import annotations

import re
from pathlib import Path

import ai_spine
import spark_core

ROOT = Path(__file__).resolve().parents[2]


def test_both_packages_carry_the_distributions_version() -> None:
    # pyproject.toml reads ai_spine's; spark_core cannot import ai_spine, so it repeats it.
    assert spark_core.__version__ == ai_spine.__version__


def test_the_version_succeeds_the_published_2_x_client() -> None:
    major = int(ai_spine.__version__.split(".")[0])
    assert major >= 3  # ai-spine-sdk 2.3.1 is on the package index


def test_the_changelog_has_an_entry_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## {re.escape(ai_spine.__version__)}\b", changelog, re.M)
