"""Errors of recursive self-improvement (``spark_core.rsi``).

::

    SparkError
    └── RSIError
        ├── ExperienceStoreError    the experience database cannot be opened, read or written
        ├── ProposalError           a proposal is malformed or does not apply to the spec
        ├── DeploymentError         a version cannot be written, found or registered
        └── RollbackError           there is no earlier version to go back to
"""

from __future__ import annotations

from spark_core.errors import SparkError

__all__ = [
    "RSIError",
    "ExperienceStoreError",
    "ProposalError",
    "DeploymentError",
    "RollbackError",
]


class RSIError(SparkError):
    """Base class of every error raised by ``spark_core.rsi``."""


class ExperienceStoreError(RSIError):
    """The experience database cannot be opened, read or written."""


class ProposalError(RSIError, ValueError):
    """A proposal is malformed, or does not apply to the spec it targets."""


class DeploymentError(RSIError):
    """A spec version cannot be written, found or registered."""


class RollbackError(DeploymentError):
    """There is no earlier version to roll back to."""
