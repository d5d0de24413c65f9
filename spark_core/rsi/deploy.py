"""Deploy: the winner becomes a new spec version; rollback is one call.

A :class:`SpecRepository` keeps every version of a mission as its own JSON file and a
history of what was current when::

    <root>/<mission_id>/versions/1.0.0.json
    <root>/<mission_id>/versions/1.1.0.json
    <root>/<mission_id>/history.json        [{"action": "init" | "deploy" | "rollback",
                                              "version", "previous_version", "at",
                                              "proposal_id", "changes", "diff"}, ...]

Files are written atomically (temporary file + rename) and a published version is never
overwritten, so a crash leaves either the old state or the new one. The current version is
the last history entry's. ``diff`` is the text ``spark-spec mission-diff`` prints for the two
versions. A deploy or rollback can also replace the flow on an AI Spine server or a
``LocalSpine``: any object with ``update_flow(flow_id, spec, name=..., description=...)``
(spark_core does not import ai_spine); a registration that fails leaves the current version
as it was.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from spark_core.rsi.errors import DeploymentError, RollbackError
from spark_core.spec import MissionSpec, SpecError, is_semver, load_mission_spec
from spark_core.spec.diff import diff_specs, render_text
from spark_core.spec.serde import spec_to_json, write_text_atomic

__all__ = [
    "normalize_version",
    "bump_version",
    "DeploymentRecord",
    "SpecRepository",
    "register_flow",
]

_SHORT = re.compile(r"^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def normalize_version(version: str) -> str:
    """Turn ``"1"`` / ``"1.0"`` into ``"1.0.0"``; leave semantic versions as they are.

    Args:
        version: The version.

    Returns:
        A semantic version.

    Raises:
        DeploymentError: It is neither.
    """
    text = str(version).strip()
    short = _SHORT.fullmatch(text)
    if short:
        return f"{short.group(1)}.{short.group(2) or 0}.0"
    if is_semver(text):
        return text
    raise DeploymentError(f"version {version!r} is not a semantic version")


def bump_version(version: str, part: str = "minor") -> str:
    """Bump a version (pre-release and build parts are dropped).

    Args:
        version: The current version (``"1.0"`` is read as ``"1.0.0"``).
        part: ``"major"``, ``"minor"`` or ``"patch"``.

    Returns:
        The next version (``"1.0.0"`` minor -> ``"1.1.0"``).

    Raises:
        DeploymentError: The version is not semantic or ``part`` is unknown.
    """
    core = re.split(r"[-+]", normalize_version(version), maxsplit=1)[0]
    major, minor, patch = (int(p) for p in core.split("."))
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise DeploymentError(f"unknown version part {part!r} (major, minor or patch)")


@dataclass
class DeploymentRecord:
    """One change of the current version.

    Attributes:
        mission_id: The mission.
        action: ``"init"``, ``"deploy"`` or ``"rollback"``.
        version: The version now current.
        previous_version: The version current before (None for ``init``).
        at: ``time.time()`` of the change.
        proposal_id: The proposal deployed (deploys from RSI).
        changes: The structural changes (``Change.to_dict()`` forms).
        diff: The changes as ``mission-diff`` prints them.
        path: The version's file.
        registered: Whether a flow registry was updated.
    """

    mission_id: str
    action: str
    version: str
    previous_version: Optional[str] = None
    at: float = 0.0
    proposal_id: Optional[str] = None
    changes: List[Dict[str, Any]] = field(default_factory=list)
    diff: str = ""
    path: str = ""
    registered: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """Return the record as JSON-ready data.

        Returns:
            A dict.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> DeploymentRecord:
        """Build a record from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The record.
        """
        return cls(**data)


def register_flow(registry: Any, mission: MissionSpec) -> Dict[str, Any]:
    """Replace the mission's flow on a flow registry (``LocalSpine``, ``AISpine``...).

    Args:
        registry: Anything with ``update_flow(flow_id, spec, name=..., description=...)``.
        mission: The version to serve.

    Returns:
        What ``update_flow`` returned (as a dict when it is one).

    Raises:
        DeploymentError: The registry has no ``update_flow`` or refused the flow.
    """
    from spark_core.spec.deploy import flow_payload

    update = getattr(registry, "update_flow", None)
    if not callable(update):
        raise DeploymentError(
            f"{type(registry).__name__} has no update_flow(flow_id, spec, ...) method"
        )
    payload = flow_payload(mission)
    try:
        answer = update(
            payload["flow_id"],
            payload["spec"],
            name=payload["name"],
            description=payload["description"],
        )
    except Exception as exc:  # the registry's own error types are not ours to import
        raise DeploymentError(
            f"registering {mission.mission_id} {mission.version} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return dict(answer) if isinstance(answer, dict) else {"result": answer}


class SpecRepository:
    """Every version of a mission, and which one is current.

    Args:
        root: The repository folder (created on first write).
        clock: Returns the current time (``time.time``); a seam for tests.
    """

    def __init__(
        self,
        root: Union[str, "os.PathLike[str]"],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.clock = clock

    def __repr__(self) -> str:
        return f"SpecRepository({str(self.root)!r})"

    def _folder(self, mission_id: str) -> Path:
        if not _ID.fullmatch(mission_id or ""):
            raise DeploymentError(f"invalid mission id {mission_id!r}")
        return self.root / mission_id

    def _version_path(self, mission_id: str, version: str) -> Path:
        if not is_semver(version):
            raise DeploymentError(f"version {version!r} is not a semantic version")
        return self._folder(mission_id) / "versions" / f"{version}.json"

    # ------------------------------------------------------------------ reading
    def history(self, mission_id: str) -> List[DeploymentRecord]:
        """Return the mission's history, oldest first (empty when unknown).

        Args:
            mission_id: The mission.

        Returns:
            The records.

        Raises:
            DeploymentError: The history file is unreadable.
        """
        path = self._folder(mission_id) / "history.json"
        if not path.exists():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return [DeploymentRecord.from_dict(item) for item in data]
        except (OSError, ValueError, TypeError) as exc:
            raise DeploymentError(f"cannot read {path}: {exc}") from None

    def missions(self) -> List[str]:
        """Return the ids of the missions with a history.

        Returns:
            Sorted ids.
        """
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/history.json"))

    def current_version(self, mission_id: str) -> Optional[str]:
        """Return the current version, or None when the mission has no history.

        Args:
            mission_id: The mission.

        Returns:
            The version.
        """
        history = self.history(mission_id)
        return history[-1].version if history else None

    def load(self, mission_id: str, version: Optional[str] = None) -> MissionSpec:
        """Load a version (default: the current one).

        Args:
            mission_id: The mission.
            version: The version.

        Returns:
            The spec.

        Raises:
            DeploymentError: No such version.
        """
        version = version or self.current_version(mission_id)
        if version is None:
            raise DeploymentError(f"no versions of {mission_id!r} in {self.root}")
        path = self._version_path(mission_id, version)
        if not path.exists():
            raise DeploymentError(
                f"no version {version} of {mission_id!r} in {self.root}"
            )
        try:
            return load_mission_spec(path)
        except SpecError as exc:
            raise DeploymentError(f"version file {path} is unusable: {exc}") from None

    # ------------------------------------------------------------------ writing
    def _publish(self, mission: MissionSpec) -> Path:
        path = self._version_path(mission.mission_id, mission.version)
        text = spec_to_json(mission)
        if path.exists():
            if path.read_text(encoding="utf-8") != text:
                raise DeploymentError(
                    f"version {mission.version} of {mission.mission_id!r} already exists "
                    "with other content; a published version is never overwritten"
                )
            return path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text)
        except (OSError, SpecError) as exc:
            raise DeploymentError(f"cannot write {path}: {exc}") from None
        return path

    def _append(self, record: DeploymentRecord) -> DeploymentRecord:
        history = self.history(record.mission_id) + [record]
        path = self._folder(record.mission_id) / "history.json"
        try:
            write_text_atomic(
                path, json.dumps([r.to_dict() for r in history], indent=2) + "\n"
            )
        except SpecError as exc:
            raise DeploymentError(str(exc)) from None
        return record

    def ensure_baseline(self, mission: MissionSpec) -> Optional[DeploymentRecord]:
        """Store ``mission`` as the first version when the mission has no history yet.

        Args:
            mission: The spec in use.

        Returns:
            The ``init`` record, or None when there was a history already.
        """
        if self.history(mission.mission_id):
            return None
        path = self._publish(mission)
        return self._append(
            DeploymentRecord(
                mission.mission_id,
                "init",
                mission.version,
                at=self.clock(),
                path=str(path),
            )
        )

    def _change(
        self,
        action: str,
        new: MissionSpec,
        old: MissionSpec,
        registry: Any,
        proposal_id: Optional[str],
    ) -> DeploymentRecord:
        existed = self._version_path(new.mission_id, new.version).exists()
        path = self._publish(new)
        changes = diff_specs(old.to_dict(), new.to_dict())
        registered = False
        if registry is not None:
            try:
                register_flow(registry, new)
            except DeploymentError:
                if (
                    not existed
                ):  # never current: take it back, so a retry can publish it
                    path.unlink()
                raise
            registered = True
        record = DeploymentRecord(
            new.mission_id,
            action,
            new.version,
            previous_version=old.version,
            at=self.clock(),
            proposal_id=proposal_id,
            changes=[c.to_dict() for c in changes],
            diff=render_text(changes),
            path=str(path),
            registered=registered,
        )
        try:
            return self._append(record)
        except DeploymentError:
            if not existed:  # never current: take it back, so a retry can publish it
                path.unlink()
            raise

    def deploy(
        self,
        candidate: MissionSpec,
        *,
        proposal_id: Optional[str] = None,
        registry: Any = None,
    ) -> DeploymentRecord:
        """Make ``candidate`` the current version.

        Args:
            candidate: The new version (its ``version`` must be new for the mission).
            proposal_id: The proposal it carries.
            registry: Optional flow registry to update (``update_flow``).

        Returns:
            The ``deploy`` record.

        Raises:
            DeploymentError: No current version, a version that exists already, a write or
                a registration that failed (the current version is then unchanged).
        """
        current = self.current_version(candidate.mission_id)
        if current is None:
            raise DeploymentError(
                f"no current version of {candidate.mission_id!r}: call ensure_baseline first"
            )
        if self._version_path(candidate.mission_id, candidate.version).exists():
            raise DeploymentError(
                f"version {candidate.version} of {candidate.mission_id!r} already exists"
            )
        old = self.load(candidate.mission_id, current)
        return self._change("deploy", candidate, old, registry, proposal_id)

    def rollback(self, mission_id: str, *, registry: Any = None) -> DeploymentRecord:
        """Make the version that was current before the current one current again.

        Args:
            mission_id: The mission.
            registry: Optional flow registry to update (``update_flow``).

        Returns:
            The ``rollback`` record.

        Raises:
            RollbackError: There is no earlier version.
            DeploymentError: A write or the registration failed (nothing changed then).
        """
        history = self.history(mission_id)
        if not history or history[-1].previous_version is None:
            raise RollbackError(
                f"{mission_id!r} has no earlier version to roll back to"
            )
        target = self._previous(history)
        old = self.load(mission_id, history[-1].version)
        return self._change(
            "rollback", self.load(mission_id, target), old, registry, None
        )

    @staticmethod
    def _previous(history: List[DeploymentRecord]) -> str:
        """The version the current one replaced, skipping versions rolled back from."""
        last = history[-1]
        if last.action != "rollback":
            return str(last.previous_version)
        # After a rollback, "previous" is the version current before the rolled-back
        # deploy: find the entry that made the current version current the first time.
        for record in reversed(history[:-1]):
            if record.version == last.version and record.action != "rollback":
                if record.previous_version is None:
                    raise RollbackError(
                        f"{last.mission_id!r} has no earlier version to roll back to"
                    )
                return record.previous_version
        raise RollbackError(
            f"{last.mission_id!r} has no earlier version to roll back to"
        )
