"""Errors raised by the spec layer (parsing, validation, loading, packaging)."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Sequence

from spark_core.errors import SparkError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from spark_core.spec.validation import ValidationIssue

__all__ = ["SpecError", "SpecValidationError", "SpecLoadError"]


class SpecError(SparkError):
    """Base class for every error about a graph or mission spec."""


class SpecValidationError(SpecError):
    """A spec is malformed or invalid.

    Attributes:
        issues: Every problem found, each with a dotted path (e.g.
            ``graph.nodes[2].config.retry.max_retries``), a message and a severity.
    """

    def __init__(
        self, issues: Sequence[ValidationIssue], *, source: str | None = None
    ) -> None:
        """Create the error.

        Args:
            issues: The problems found (at least one).
            source: Optional file name the spec was read from, for the message.
        """
        self.issues: List[ValidationIssue] = list(issues)
        self.source = source
        errors = [i for i in self.issues if i.severity == "error"] or self.issues
        head = str(errors[0]) if errors else "invalid spec"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        where = f"{source}: " if source else ""
        super().__init__(f"{where}invalid spec: {head}{more}")


class SpecLoadError(SpecError):
    """A valid spec cannot be turned into a runnable object (disallowed or unknown type)."""
