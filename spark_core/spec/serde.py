"""Read and write graph and mission specs as JSON files (atomic writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

from spark_core import files
from spark_core.files import PathLike
from spark_core.spec._parse import ValidationIssue, join_path
from spark_core.spec.errors import SpecError, SpecValidationError
from spark_core.spec.models import GraphSpec, MissionSpec

__all__ = [
    "PathLike",
    "spec_to_json",
    "parse_json",
    "read_json_file",
    "write_text_atomic",
    "write_bytes_atomic",
    "save_mission_spec",
    "load_mission_spec",
    "save_graph_spec",
    "load_graph_spec",
    "load_spec",
    "spec_from_dict",
]

#: Largest spec file read (bytes); a spec is configuration, not data.
MAX_SPEC_BYTES = 16 * 1024 * 1024


def spec_to_json(spec: Union[GraphSpec, MissionSpec]) -> str:
    """Serialise a spec to stable, indented JSON text.

    Args:
        spec: The spec.

    Returns:
        JSON text ending with a newline.

    Raises:
        SpecError: The spec holds a value JSON cannot represent.
    """
    try:
        return json.dumps(spec.to_dict(), indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError, RecursionError) as exc:
        raise SpecError(f"spec is not JSON-serialisable: {exc}") from None


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write text to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    Args:
        path: Destination file.
        text: Content (UTF-8).

    Raises:
        SpecError: The file cannot be written; the destination is left untouched.
    """
    files.write_text_atomic(path, text, error=SpecError)


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write bytes to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    Args:
        path: Destination file.
        data: Content.

    Raises:
        SpecError: The file cannot be written; the destination is left untouched.
    """
    files.write_bytes_atomic(path, data, error=SpecError)


def parse_json(text: Union[str, bytes], *, source: str | None = None) -> Any:
    """Parse JSON text, turning every failure into a :class:`SpecValidationError`.

    Args:
        text: The JSON text.
        source: Name used in the error message.

    Returns:
        The parsed value.

    Raises:
        SpecValidationError: The text is not valid JSON, or an object in it has a key twice
            (``json`` would keep the last silently; each is named by its path).
    """
    seen_twice: List[bool] = []

    def pairs_hook(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
        data = dict(pairs)
        if len(data) == len(pairs):
            return data
        seen_twice.append(True)
        return _Duplicated(pairs)

    try:
        value = json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=pairs_hook
        )
    except json.JSONDecodeError as exc:
        issue = ValidationIssue(
            "", f"invalid JSON at line {exc.lineno} column {exc.colno}: " f"{exc.msg}"
        )
    except UnicodeDecodeError:
        issue = ValidationIssue("", "invalid JSON: not UTF-8 text")
    except RecursionError:
        issue = ValidationIssue("", "invalid JSON: nested too deeply")
    except ValueError as exc:
        issue = ValidationIssue("", f"invalid JSON: {exc}")
    else:
        if not seen_twice:
            return value
        raise SpecValidationError(_duplicate_keys(value), source=source)
    raise SpecValidationError([issue], source=source)


class _Duplicated(Dict[str, Any]):
    """A parsed JSON object that had a key more than once (only to report it)."""

    def __init__(self, pairs: List[Tuple[str, Any]]) -> None:
        super().__init__(pairs)
        counts: Dict[str, int] = {}
        for key, _ in pairs:
            counts[key] = counts.get(key, 0) + 1
        self.twice = [key for key, count in counts.items() if count > 1]


def _duplicate_keys(value: Any) -> List[ValidationIssue]:
    issues = []
    stack: List[Tuple[str, Any]] = [("", value)]
    while stack:  # iterative: specs may nest deeply
        path, item = stack.pop()
        if isinstance(item, _Duplicated):
            for key in item.twice:
                issues.append(
                    ValidationIssue(
                        join_path(path, key), "duplicate key in a JSON object"
                    )
                )
        if isinstance(item, dict):
            stack.extend((join_path(path, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(
                (join_path(path, i), v) for i, v in reversed(list(enumerate(item)))
            )
    return issues


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def read_json_file(path: PathLike) -> Any:
    """Read and parse a JSON file.

    Args:
        path: The file.

    Returns:
        The parsed value.

    Raises:
        SpecError: The file cannot be read or is too large.
        SpecValidationError: It is not valid JSON.
    """
    target = Path(path)
    try:
        size = target.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"{target}: spec file too large ({size} bytes)")
        data = target.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read {target}: {exc.strerror or exc}") from None
    return parse_json(data, source=str(target))


def _from_dict(cls: Any, data: Any, source: str) -> Any:
    try:
        return cls.from_dict(data)
    except SpecValidationError as exc:
        raise SpecValidationError(exc.issues, source=source) from None


def save_mission_spec(path: PathLike, mission: MissionSpec) -> None:
    """Write a mission spec as JSON, atomically.

    Args:
        path: Destination file.
        mission: The mission.

    Raises:
        SpecError: It cannot be written.
    """
    write_text_atomic(path, spec_to_json(mission))


def load_mission_spec(path: PathLike) -> MissionSpec:
    """Read a mission spec from a JSON file (structure is checked, not semantics).

    Args:
        path: The file.

    Returns:
        The mission.

    Raises:
        SpecError: The file cannot be read.
        SpecValidationError: It is not valid JSON or not a well-formed mission.
    """
    mission: MissionSpec = _from_dict(MissionSpec, read_json_file(path), str(path))
    return mission


def save_graph_spec(path: PathLike, graph: GraphSpec) -> None:
    """Write a graph spec as JSON, atomically.

    Args:
        path: Destination file.
        graph: The graph.

    Raises:
        SpecError: It cannot be written.
    """
    write_text_atomic(path, spec_to_json(graph))


def load_graph_spec(path: PathLike) -> GraphSpec:
    """Read a graph spec from a JSON file (structure is checked, not semantics).

    Args:
        path: The file.

    Returns:
        The graph.

    Raises:
        SpecError: The file cannot be read.
        SpecValidationError: It is not valid JSON or not a well-formed graph.
    """
    graph: GraphSpec = _from_dict(GraphSpec, read_json_file(path), str(path))
    return graph


def spec_from_dict(data: Dict[str, Any]) -> Union[GraphSpec, MissionSpec]:
    """Build a mission (when ``data`` has ``mission_id``) or a graph spec.

    Args:
        data: The dict form.

    Returns:
        The spec.

    Raises:
        SpecValidationError: It is malformed.
    """
    if isinstance(data, dict) and "mission_id" in data:
        return MissionSpec.from_dict(data)
    return GraphSpec.from_dict(data)


def load_spec(path: PathLike) -> Union[GraphSpec, MissionSpec]:
    """Read either a mission or a graph spec from a JSON file.

    Args:
        path: The file.

    Returns:
        A :class:`MissionSpec` when the document has ``mission_id``, else a :class:`GraphSpec`.

    Raises:
        SpecError: The file cannot be read.
        SpecValidationError: It is not valid JSON or not a well-formed spec.
    """
    data = read_json_file(path)
    spec: Union[GraphSpec, MissionSpec] = _from_dict(_Either, data, str(path))
    return spec


class _Either:
    @staticmethod
    def from_dict(data: Any) -> Union[GraphSpec, MissionSpec]:
        return spec_from_dict(data)
