"""Checked by mypy (``tests/local/test_typing.py`` runs it): both clients satisfy ``Spine``."""

from __future__ import annotations

from ai_spine import AISpine, LocalSpine
from ai_spine.protocol import Spine


def as_spine(spine: Spine) -> Spine:
    """Accept anything that satisfies the protocol."""
    return spine


def remote() -> Spine:
    """AISpine is a Spine."""
    return as_spine(AISpine(base_url="http://127.0.0.1:1"))


def local() -> Spine:
    """LocalSpine is a Spine."""
    return as_spine(LocalSpine())
