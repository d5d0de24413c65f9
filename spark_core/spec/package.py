"""Build a deployable mission package: a zip with the spec, schemas, tools and a manifest."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from typing import Any, Dict, List, Tuple

from spark_core.spec.errors import SpecError
from spark_core.spec.models import MissionSpec, MissionStateSchemaSpec
from spark_core.spec.serde import PathLike, spec_to_json, write_bytes_atomic

__all__ = ["build_package", "state_json_schema", "PACKAGE_FORMAT"]

PACKAGE_FORMAT = "spark-mission-package/1"
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: same mission, same bytes
_JSON_TYPES = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array"},
    "dict": {"type": "object"},
    "datetime": {"type": "string", "format": "date-time"},
    "any": {},
}


def state_json_schema(spec: MissionStateSchemaSpec, title: str) -> Dict[str, Any]:
    """Describe a state schema spec as a JSON Schema document.

    Args:
        spec: The state schema.
        title: The schema's title.

    Returns:
        A JSON Schema (draft 2020-12) object; extra keys are allowed.
    """
    properties: Dict[str, Any] = {}
    for name, field in spec.fields.items():
        prop = dict(_JSON_TYPES.get(field.type, {}))
        if field.description:
            prop["description"] = field.description
        if field.default is not None:
            prop["default"] = field.default
        properties[name] = prop
    schema: Dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": properties,
        "required": sorted(n for n, f in spec.fields.items() if f.required),
        "additionalProperties": True,
    }
    if spec.schema_class:
        schema["x-schema-class"] = spec.schema_class
    return schema


def _requirements(mission: MissionSpec, include_deps: bool) -> str:
    lines = ["# Requirements of mission " + mission.mission_id]
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            sdk = f"ai-spine-sdk=={version('ai-spine-sdk')}"
        except PackageNotFoundError:
            sdk = "ai-spine-sdk"
    except ImportError:  # pragma: no cover - Python < 3.8
        sdk = "ai-spine-sdk"
    lines.append(sdk)
    if include_deps:
        roots = set()
        references = [n.type for n in mission.graph.nodes if ":" in n.type]
        references += [t.reference for t in mission.graph.tools if t.reference]
        if mission.simulation:
            references += [o.handler for o in mission.simulation.tools if o.handler]
        for ref in references:
            root = ref.split(":", 1)[0].split(".", 1)[0]
            if root not in ("spark_core", "ai_spine"):
                roots.add(root)
        for root in sorted(roots):
            lines.append(
                f"# code referenced by the spec comes from the '{root}' package: "
                "add the distribution that provides it"
            )
    return "\n".join(lines) + "\n"


def _files(mission: MissionSpec, include_deps: bool) -> List[Tuple[str, bytes]]:
    files: List[Tuple[str, bytes]] = [
        ("mission.json", spec_to_json(mission).encode("utf-8"))
    ]
    files.append(
        ("requirements.txt", _requirements(mission, include_deps).encode("utf-8"))
    )
    schemas = []
    if mission.state_schema is not None:
        schemas.append(
            ("schemas/mission_state.schema.json", mission.state_schema, "mission")
        )
    if mission.graph.state_schema is not None:
        schemas.append(
            ("schemas/graph_state.schema.json", mission.graph.state_schema, "graph")
        )
    for name, spec, what in schemas:
        doc = state_json_schema(spec, f"{mission.mission_id} {what} state")
        files.append((name, (json.dumps(doc, indent=2) + "\n").encode("utf-8")))
    overrides = {
        o.name: o for o in (mission.simulation.tools if mission.simulation else [])
    }
    for tool in mission.graph.tools:
        if not _FILE_NAME.fullmatch(tool.name):
            # The name becomes a path inside the zip: no folders, no "..".
            raise SpecError(
                f"tool name {tool.name!r} cannot name a package file "
                "(letters, digits, '_', '-' and '.', not first)"
            )
        doc = tool.to_dict()
        if tool.name in overrides:
            doc["simulation"] = overrides[tool.name].to_dict()
        files.append(
            (f"tools/{tool.name}.json", (json.dumps(doc, indent=2) + "\n").encode())
        )
    return files


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_package(
    mission: MissionSpec, output: PathLike, *, include_deps: bool = False
) -> Dict[str, Any]:
    """Write the mission package zip atomically and return its manifest.

    The zip holds ``mission.json``, ``requirements.txt``, ``schemas/*.schema.json`` (JSON
    Schema of the declared state), ``tools/<name>.json`` (one per tool, with its simulation
    override) and ``manifest.json`` listing every other file with its size and SHA-256.
    ``schemas/`` and ``tools/`` are present even when empty.

    Args:
        mission: The mission (validate it first).
        output: The zip file to write.
        include_deps: Also note the packages the spec's references need.

    Returns:
        The manifest.

    Raises:
        SpecError: The package cannot be written (nothing is left behind).
    """
    files = _files(mission, include_deps)
    manifest: Dict[str, Any] = {
        "format": PACKAGE_FORMAT,
        "mission_id": mission.mission_id,
        "version": mission.version,
        "spark_version": mission.spark_version,
        "description": mission.description,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in files
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for folder in ("schemas/", "tools/"):
            archive.writestr(zipfile.ZipInfo(folder, date_time=_EPOCH), b"")
        for name, data in files:
            _add(archive, name, data)
        _add(archive, "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    write_bytes_atomic(output, buffer.getvalue())
    return manifest
