"""Checked by mypy (``tests/local/test_typing.py`` runs it): the clients satisfy their protocols.

``AISpine`` and ``LocalSpine`` are ``Spine``s; ``AsyncAISpine`` and ``AsyncLocalSpine`` are
``AsyncSpine``s.
"""

from __future__ import annotations

from ai_spine import AISpine, AsyncAISpine, AsyncLocalSpine, LocalSpine
from ai_spine.protocol import AsyncSpine, Spine


def as_spine(spine: Spine) -> Spine:
    """Accept anything that satisfies the protocol."""
    return spine


def remote() -> Spine:
    """AISpine is a Spine."""
    return as_spine(AISpine(base_url="http://127.0.0.1:1"))


def local() -> Spine:
    """LocalSpine is a Spine."""
    return as_spine(LocalSpine())


def as_async_spine(spine: AsyncSpine) -> AsyncSpine:
    """Accept anything that satisfies the async protocol."""
    return spine


def remote_async() -> AsyncSpine:
    """AsyncAISpine is an AsyncSpine."""
    return as_async_spine(AsyncAISpine(base_url="http://127.0.0.1:1"))


def local_async() -> AsyncSpine:
    """AsyncLocalSpine is an AsyncSpine."""
    return as_async_spine(AsyncLocalSpine(LocalSpine()))
