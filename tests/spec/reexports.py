"""An allowed-looking module that re-exports dangerous functions (loader tests)."""

from __future__ import annotations

from os import system
from subprocess import run

from tests.spec.sample_graphs import search

__all__ = ["run", "search", "system"]
