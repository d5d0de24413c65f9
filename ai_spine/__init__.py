"""AI Spine SDK: a client for the AI Spine agent orchestration API."""

from ai_spine.__version__ import __version__

__all__ = ["__version__"]
