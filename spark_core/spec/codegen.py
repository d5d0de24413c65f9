"""Compile a graph or mission spec to Python source (``spark-spec compile``).

Two styles:

* ``simple``: one module that builds the graph in plain Python (nodes, capabilities, edges,
  tools) and runs it: ``python <module>.py '{"input": 1}'``. A readable starting point.
* ``production``: a package ``<name>/`` holding ``mission.json`` (the spec stays the source of
  truth), ``__init__.py`` with ``build_graph()`` (through ``SpecLoader``, plan attached) and
  ``__main__.py``: ``python -m <name> --input JSON [--state FILE.sqlite] [--resume RUN_ID]``.

Tools with a ``reference`` are imported from it; tools without one become stubs that return
the mission's simulated response (marked TODO) or raise ``NotImplementedError``.
"""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from spark_core.spec._parse import ValidationIssue, join_path
from spark_core.spec.allowlist import DEFAULT_ALLOWED_MODULES, normalise_prefixes
from spark_core.spec.errors import SpecError, SpecValidationError
from spark_core.spec.models import (
    CircuitBreakerSpec,
    GraphSpec,
    MissionSpec,
    MissionStateSchemaSpec,
    NodeConfigSpec,
    RateLimitSpec,
    RetrySpec,
    TimeoutSpec,
)
from spark_core.spec.serde import PathLike, spec_to_json, write_text_atomic
from spark_core.spec.validation import ensure_valid_graph, ensure_valid_mission

__all__ = ["STYLES", "compile_spec", "python_name"]

STYLES = ("simple", "production")
_BUILTIN_CLASSES = {
    "echo": "EchoNode",
    "merge": "MergeNode",
    "template": "TemplateNode",
    "set_state": "SetStateNode",
    "tool_call": "ToolCallNode",
    "step": "StepNode",
    "join": "SpecJoinNode",
}


def python_name(text: str, *, prefix: str = "n") -> str:
    """Turn an id into a valid, non-keyword Python identifier.

    Args:
        text: The id.
        prefix: Prepended when the result would start with a digit or be a keyword.

    Returns:
        The identifier.
    """
    name = re.sub(r"\W", "_", text, flags=re.ASCII) or prefix
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"{prefix}_{name}"
    return name


def _one_line(text: str) -> str:
    """``text`` as one line of printable characters (comments and docstrings hold it)."""
    # isprintable() is False for every line break (\n, \r, \u2028, \x85...) and for \0.
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _docstring(text: str, indent: str = "") -> str:
    """A triple-quoted docstring holding ``text`` (spec strings made harmless first).

    ``text`` may span lines (the lines given here); every ``\\`` and ``"`` in it is escaped,
    so nothing from a spec can end the literal or start an escape sequence.
    """
    lines = [
        _one_line(line).replace("\\", "\\\\").replace('"', '\\"')
        for line in text.split("\n")
    ]
    body = ("\n" + indent).join(lines).replace("\n" + indent + "\n", "\n\n")
    end = "\n" + indent if len(lines) > 1 else ""
    return f'{indent}"""{body}{end}"""'


def _kwarg_name(key: str) -> bool:
    """Whether ``key`` can be written as ``key=...`` (ASCII: no NFKC renaming)."""
    return key.isascii() and key.isidentifier() and not keyword.iskeyword(key)


def _import(reference: str, alias: str) -> str:
    """``from module import name as alias`` for a validated ``module:name`` reference."""
    module, attr = reference.split(":", 1)
    return f"from {module} import {attr} as {alias}"


def _inexpressible(graph: GraphSpec, mission: Optional[MissionSpec]) -> None:
    """Refuse what a valid spec may hold but generated Python cannot say.

    Raises:
        SpecValidationError: Naming each keyword reference and keyword state field name.
    """
    base = "graph" if mission is not None else ""
    nodes, tools = join_path(base, "nodes"), join_path(base, "tools")
    issues = []
    references: List[Tuple[str, str, Optional[str]]] = [
        (join_path(nodes, i), "type", n.type) for i, n in enumerate(graph.nodes)
    ]
    references += [
        (join_path(tools, i), "reference", t.reference)
        for i, t in enumerate(graph.tools)
    ]
    for where, key, ref in references:
        parts = ref.replace(":", ".").split(".") if ref and ":" in ref else []
        if any(keyword.iskeyword(part) for part in parts):
            issues.append(
                ValidationIssue(
                    join_path(where, key), "holds a Python keyword: cannot import it"
                )
            )
    schemas = [(join_path(base, "state_schema"), graph.state_schema)]
    if mission is not None:
        schemas.append(("state_schema", mission.state_schema))
    for where, schema in schemas:
        for name in schema.fields if schema is not None else ():
            if keyword.iskeyword(name):  # validation checked the rest
                issues.append(
                    ValidationIssue(
                        join_path(join_path(where, "fields"), name),
                        "is a Python keyword: compiled code cannot declare it",
                    )
                )
    if issues:
        raise SpecValidationError(issues)


def _prefixed(prefix: str, text: str) -> str:
    """``python_name(text)`` starting with ``prefix``.

    Generated names carry a prefix no name of the module itself has (node variables
    ``n_``, custom classes ``C_``, tools ``tool_``), so no id can shadow an import or
    another generated name.
    """
    name = python_name(text)
    return name if name.startswith(prefix) else prefix + name


def _unique(names: Dict[str, str], base: str) -> str:
    taken = set(names.values())
    candidate, counter = base, 2
    while candidate in taken:
        candidate = f"{base}_{counter}"
        counter += 1
    return candidate


def _call(name: str, spec: object, defaults: object) -> str:
    """``Name(field=value, ...)`` listing only the fields that differ from the defaults."""
    args = [
        f"{key}={value!r}"
        for key, value in vars(spec).items()
        if value != getattr(defaults, key)
    ]
    return f"{name}({', '.join(args)})"


def _config_parts(config: NodeConfigSpec, description: str) -> List[str]:
    """The ``NodeConfig(...)`` arguments of a node (empty: no config)."""
    parts = []
    if config.retry is not None:
        parts.append("retry=" + _call("RetryCapability", config.retry, RetrySpec()))
    if config.timeout is not None:
        parts.append(
            "timeout=" + _call("TimeoutCapability", config.timeout, TimeoutSpec())
        )
    if config.rate_limit is not None:
        parts.append(
            "rate_limit="
            + _call("RateLimitCapability", config.rate_limit, RateLimitSpec())
        )
    if config.circuit_breaker is not None:
        parts.append(
            "circuit_breaker="
            + _call(
                "CircuitBreakerCapability", config.circuit_breaker, CircuitBreakerSpec()
            )
        )
    if description:
        parts.append(f"description={description!r}")
    return parts


def _assign(var: str, func: str, args: List[str], config: List[str]) -> List[str]:
    """``var = func(args, config=NodeConfig(...))``: one line, or one argument per line."""
    inline = args + ([f"config=NodeConfig({', '.join(config)})"] if config else [])
    line = f"    {var} = {func}({', '.join(inline)})"
    if len(line) <= 99:
        return [line]
    out = [f"    {var} = {func}("]
    out.extend(f"        {arg}," for arg in args)
    if config:
        out.append("        config=NodeConfig(")
        out.extend(f"            {part}," for part in config)
        out.append("        ),")
    return out + ["    )"]


_MAKE_HELPER = '''

def _make(
    cls: Any, node_id: str, params: Dict[str, Any], config: Optional[NodeConfig] = None
) -> Node:
    """Create a node of a custom class and give it the spec's id and config."""
    params = dict(params)
    accepted = inspect.signature(cls.__init__).parameters
    open_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    if "name" in accepted or open_kw:
        params["name"] = node_id
    if "config" in accepted or open_kw:
        params["config"] = config
    node: Node = cls(**params)
    node.name = node.id = node_id
    if config is not None:
        node.config = config
    return node
'''


_ANNOTATIONS = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "list": "list",
    "dict": "dict",
    "datetime": "str",
    "any": "Any",
}


def _schema_class(schema: MissionStateSchemaSpec) -> List[str]:
    """Source of a ``MissionStateModel`` subclass declaring the schema's fields."""
    lines = ["", "", "class MissionState(MissionStateModel):"]
    lines.append('    """The declared graph state (from the spec\'s state schema)."""')
    lines.append("")
    for name, field in schema.fields.items():
        kind = _ANNOTATIONS.get(field.type, "Any")
        if field.default is None and kind != "Any":
            kind = f"Optional[{kind}]"
        comment = f"  # {_one_line(field.description)}" if field.description else ""
        lines.append(f"    {name}: {kind} = {field.default!r}{comment}")
    return lines


def _tools_code(
    graph: GraphSpec, mission: Optional[MissionSpec]
) -> Tuple[Dict[str, str], List[str], List[str]]:
    """Function names, stub source lines and import lines for the graph's tools."""
    sim = mission.simulation if mission is not None else None
    overrides = {o.name: o for o in (sim.tools if sim is not None else [])}
    tool_lines: List[str] = []
    tool_names: Dict[str, str] = {}
    imports: List[str] = []
    for tool in graph.tools:
        fname = _unique(tool_names, _prefixed("tool_", tool.name))
        tool_names[tool.name] = fname
        if tool.reference:
            imports.append(_import(tool.reference, fname))
            continue
        override = overrides.get(tool.name)
        doc = _one_line(tool.description) or "no description"
        tool_lines += ["", "", f"def {fname}(**arguments: Any) -> Any:"]
        tool_lines.append(_docstring(f"Tool {tool.name!r}: {doc}.", "    "))
        if override is not None and override.handler is None:
            tool_lines.append(
                "    # TODO: replace this simulated response with the real tool."
            )
            tool_lines.append(f"    return {override.static_response!r}")
        else:
            message = f"implement tool {tool.name!r}"
            tool_lines.append(f"    raise NotImplementedError({message!r})")
    return tool_names, tool_lines, imports


def _simple_module(graph: GraphSpec, mission: Optional[MissionSpec]) -> str:
    title = mission.mission_id if mission else graph.id
    lines: List[str] = []
    imports = {"json", "sys"}
    typing_names = {"Any"}
    builtin_used = sorted(
        {_BUILTIN_CLASSES[n.type] for n in graph.nodes if ":" not in n.type}
    )
    custom: Dict[str, str] = {}
    custom_imports: List[str] = []
    for node in graph.nodes:
        if ":" in node.type and node.type not in custom:
            alias = _unique(custom, _prefixed("C_", node.type.split(":")[1]))
            custom[node.type] = alias
            custom_imports.append(_import(node.type, alias))
    caps: set[str] = set()
    for node in graph.nodes:
        c = node.config
        caps.update(
            name
            for name, value in (
                ("RetryCapability", c.retry),
                ("TimeoutCapability", c.timeout),
                ("RateLimitCapability", c.rate_limit),
                ("CircuitBreakerCapability", c.circuit_breaker),
            )
            if value is not None
        )
    if custom:
        imports.add("inspect")
        typing_names.update({"Dict", "Optional"})
    tool_names, stub_lines, tool_imports = _tools_code(graph, mission)
    custom_imports.extend(tool_imports)
    state = graph.state_schema or (mission.state_schema if mission else None)
    spark_imports = [
        "from spark_core.errors import SparkError",
        "from spark_core.graphs import Graph",
    ]
    node_names = set()
    if custom:
        node_names.update({"Node", "NodeConfig"})
    if any(_config_parts(n.config, n.description) for n in graph.nodes):
        node_names.add("NodeConfig")
    if node_names:
        spark_imports.append(
            "from spark_core.nodes import " + ", ".join(sorted(node_names))
        )
    if graph.tools:
        spark_imports.append("from spark_core.governance.tools import Tool")
    if mission is not None and mission.plan is not None and mission.plan.steps:
        spark_imports.append(
            "from spark_core.graphs.mission_control import MissionPlan, PlanManager, PlanStep"
        )
    if state is not None and state.fields:
        spark_imports.append(
            "from spark_core.graphs.state_schema import MissionStateModel"
        )
        typing_names.add("Optional")
    if caps:
        spark_imports.append(
            f"from spark_core.nodes.capabilities import {', '.join(sorted(caps))}"
        )
    if mission is not None and mission.strategies:
        spark_imports.append("from spark_core.agents.factory import bind_strategies")
    if builtin_used:
        spark_imports.append(
            f"from spark_core.spec.builtin_nodes import {', '.join(builtin_used)}"
        )
    lines.append(
        _docstring(
            f"Graph {title!r}, compiled from its spec by spark-spec (style: simple).\n\n"
            'Run it: python this_file.py \'{"key": "value"}\''
        )
    )
    lines.append("")
    lines.append("from __future__ import annotations")
    lines.append("")
    lines.extend(f"import {m}" for m in sorted(imports))
    lines.append(f"from typing import {', '.join(sorted(typing_names))}")
    lines.append("")
    lines.extend(sorted(spark_imports))
    lines.extend(custom_imports)
    if custom:
        lines.extend(_MAKE_HELPER.rstrip("\n").split("\n"))
    lines.extend(stub_lines)
    if state is not None and state.fields:
        lines.extend(_schema_class(state))
    lines.append("")
    lines.append("")
    lines.append("def build_graph() -> Graph:")
    lines.append('    """Build the graph described by the spec."""')
    var_names: Dict[str, str] = {}
    for node in graph.nodes:
        var = _unique(var_names, _prefixed("n_", node.id))
        var_names[node.id] = var
        config = _config_parts(node.config, node.description)
        if ":" in node.type:
            args = [custom[node.type], repr(node.id), repr(node.params)]
            lines.extend(_assign(var, "_make", args, config))
        else:
            args = [f"name={node.id!r}"]
            args += [f"{k}={v!r}" for k, v in node.params.items() if _kwarg_name(k)]
            rest = {k: v for k, v in node.params.items() if not _kwarg_name(k)}
            if rest:  # kept (the constructor decides), not dropped
                args.append(f"**{rest!r}")
            lines.extend(_assign(var, _BUILTIN_CLASSES[node.type], args, config))
    for edge in graph.edges:
        src, dst = var_names[edge.source], var_names[edge.target]
        if edge.condition is None:
            lines.append(f"    {src} >> {dst}")
        elif edge.condition.kind == "expr":
            lines.append(f"    {src}.on(expr={edge.condition.value!r}) >> {dst}")
        elif all(
            _kwarg_name(k) and k not in ("expr", "when") for k in edge.condition.value
        ):
            kw = ", ".join(f"{k}={v!r}" for k, v in edge.condition.value.items())
            lines.append(f"    {src}.on({kw}) >> {dst}")
        else:
            # Keys such as "expr"/"when" clash with on()'s own keywords.
            lines.append(
                f"    {src}.add_edge({dst}, 'equals', {edge.condition.value!r})"
            )
    tools = ", ".join(
        f"Tool({tool_names[t.name]}, name={t.name!r})" for t in graph.tools
    )
    lines.append("    graph = Graph(")
    lines.append(f"        {var_names[graph.start]},")
    lines.append(f"        graph_id={graph.id!r},")
    if graph.max_steps is not None:  # else the Graph's default
        lines.append(f"        max_steps={graph.max_steps!r},")
    if graph.tools:
        lines.append(f"        tools=[{tools}],")
    if state is not None and state.fields:
        lines.append("        state_schema=MissionState,")
    if graph.initial_state:
        lines.append(f"        initial_state={graph.initial_state!r},")
    lines.append("    )")
    plan = mission.plan if mission is not None else None
    if plan is not None and plan.steps:
        lines.append("    plan = MissionPlan(")
        lines.append("        [")
        for step in plan.steps:
            args = [f"id={step.id!r}"]
            if step.description:
                args.append(f"description={step.description!r}")
            if step.depends_on:
                args.append(f"depends_on={step.depends_on!r}")
            if step.nodes:
                args.append(f"nodes={step.nodes!r}")
            lines.append(f"            PlanStep({', '.join(args)}),")
        lines.append("        ]")
        lines.append("    )")
        lines.append(
            f"    PlanManager(plan, state_key={plan.state_key!r}, "
            f"auto_advance={plan.auto_advance!r}).attach(graph)"
        )
    if mission is not None and mission.strategies:
        bindings = [b.to_dict() for b in mission.strategies]
        lines.append(f"    bind_strategies(graph, {bindings!r})")
    lines.append("    return graph")
    lines.append("")
    lines.append("")
    lines.append("def main(argv: Any = None) -> int:")
    lines.append(
        '    """Run the graph once on the JSON input given as the first argument."""'
    )
    default_input = mission.simulation.inputs if mission and mission.simulation else {}
    lines.extend(_MAIN_BODY.replace("DEFAULT_INPUT", repr(default_input)).split("\n"))
    lines.append("    return 0")
    lines.append("")
    lines.append("")
    lines.append('if __name__ == "__main__":')
    lines.append("    sys.exit(main())")
    return "\n".join(lines) + "\n"


# Bad input or a failed run: one line on stderr (exit 2 / 1), never a traceback.
_MAIN_BODY = """    args = sys.argv[1:] if argv is None else argv
    inputs: Any = DEFAULT_INPUT
    if args:
        try:
            inputs = json.loads(args[0])
        except ValueError as exc:
            print(f"error: the input is not JSON: {exc}", file=sys.stderr)
            return 2
    try:
        result = build_graph().run_sync(inputs)
    except SparkError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 1
    print(json.dumps({"status": result.status, "output": result.content}))"""

_PROD_INIT_DOC = (
    "Mission {title!r}, compiled by spark-spec (style: production).\n\n"
    "The spec in ``mission.json`` is the source of truth; ``build_graph()`` loads it with\n"
    "``SpecLoader`` (node classes only from the allowed module prefixes) and attaches the plan."
)

_PROD_INIT = '''{docstring}

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from spark_core.graphs import Graph, SQLiteStateBackend
from spark_core.spec.loader import SpecLoader
from spark_core.spec import MissionSpec, load_spec

from {package}.tools import TOOLS

SPEC_PATH = Path(__file__).with_name("mission.json")
ALLOWED_MODULES = {allowed!r}
ALLOWED_TOOL_MODULES = {allowed_tools!r}


def load() -> Any:
    """Read the packaged spec (a MissionSpec or a GraphSpec)."""
    return load_spec(SPEC_PATH)


def build_graph(
    *,
    tools: Optional[Mapping[str, Any]] = None,
    state_path: Optional[str] = None,
    allowed_modules: Iterable[str] = ALLOWED_MODULES,
) -> Graph:
    """Build the runnable graph.

    Args:
        tools: Tool implementations by name (win over the spec's references).
        state_path: SQLite file for durable state and resumable runs (memory if None).
        allowed_modules: Module prefixes node classes may come from.
    """
    spec = load()
    implementations = {{**TOOLS, **dict(tools or {{}})}}
    loader = SpecLoader(
        allowed_modules, allowed_tool_modules=ALLOWED_TOOL_MODULES, tools=implementations
    )
    backend = SQLiteStateBackend(state_path) if state_path else None
    if isinstance(spec, MissionSpec):
        return loader.load_mission(spec, state_backend=backend)
    return loader.load_graph(spec, state_backend=backend)
'''

_PROD_MAIN = '''"""Run it: python -m {package} --input JSON [--state FILE] [--resume RUN_ID]."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional

from spark_core.errors import SparkError

from {package} import build_graph


def main(argv: Optional[List[str]] = None) -> int:
    """Run (or resume) the mission and print the result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m {package}")
    parser.add_argument("--input", default="{{}}", help="run input as JSON")
    parser.add_argument("--state", help="SQLite state file (durable, resumable runs)")
    parser.add_argument("--resume", metavar="RUN_ID", help="resume a paused/interrupted run")
    args = parser.parse_args(argv)
    try:
        inputs: Any = json.loads(args.input)
    except ValueError as exc:
        print(f"{package}: error: --input is not JSON: {{exc}}", file=sys.stderr)
        return 2
    try:
        graph = build_graph(state_path=args.state)
        if args.resume:
            result = graph.resume_sync(args.resume)
        else:
            result = graph.run_sync(inputs)
    except SparkError as exc:
        print(f"{package}: error: {{exc}}", file=sys.stderr)
        return 1
    print(json.dumps({{"run_id": result.run_id, "status": result.status,
                      "output": result.content}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _tools_module(graph: GraphSpec, mission: Optional[MissionSpec]) -> str:
    names, stubs, _imports = _tools_code(graph, mission)
    lines = [
        '"""Tools without a reference in the spec: stubs to replace with real code."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, Callable, Dict",
    ]
    lines.extend(stubs)
    stubbed = {t.name: names[t.name] for t in graph.tools if not t.reference}
    lines += [
        "",
        "",
        "#: Tool name -> implementation (referenced tools load from the spec).",
    ]
    entries = ", ".join(f"{k!r}: {v}" for k, v in stubbed.items())
    lines.append(f"TOOLS: Dict[str, Callable[..., Any]] = {{{entries}}}")
    return "\n".join(lines) + "\n"


def _tool_references(graph: GraphSpec, mission: Optional[MissionSpec]) -> List[str]:
    refs = [t.reference for t in graph.tools if t.reference]
    return refs


def _module_name(graph: GraphSpec, mission: Optional[MissionSpec]) -> str:
    """The module (simple) or package (production) name, from the mission or graph id.

    Never the name of a module the compiled code imports: ``json.py`` run as a script would
    be what ``import json`` finds.
    """
    base = python_name(
        (mission.mission_id if mission else graph.id).lower().replace(".", "_"),
        prefix="mission",
    )
    taken = {"spark_core", *sys.builtin_module_names}
    taken.update(
        getattr(sys, "stdlib_module_names", ("json", "sys", "inspect", "typing"))
    )
    references = [n.type for n in graph.nodes] + _tool_references(graph, mission)
    taken.update(ref.split(".")[0].split(":")[0] for ref in references if ":" in ref)
    return f"mission_{base}" if base in taken else base


def compile_spec(
    spec: Union[GraphSpec, MissionSpec],
    out_dir: PathLike,
    *,
    style: str = "simple",
    allowed_modules: Tuple[str, ...] = DEFAULT_ALLOWED_MODULES,
    allowed_tool_modules: Tuple[str, ...] = (),
    overwrite: bool = True,
) -> List[Path]:
    """Write Python source for a spec.

    Every module the spec references must be allowed, by the rule ``SpecLoader`` applies
    (:mod:`spark_core.spec.allowlist`): compiled code imports nothing a server loading the
    same spec would refuse.

    Args:
        spec: The graph or mission (validated first).
        out_dir: Folder to write into (created if missing).
        style: ``"simple"`` or ``"production"``.
        allowed_modules: Module prefixes node classes may come from (include
            ``spark_core``); ``production`` code's loader allows the same.
        allowed_tool_modules: Module prefixes tools and simulation handlers may come from;
            ``production`` code's loader allows the same.
        overwrite: Replace files that exist; when False, an existing file is refused
            before anything is written.

    Returns:
        The files written.

    Raises:
        SpecValidationError: The spec is invalid, references a module that is not
            allowed, or holds what generated code cannot express (a keyword as a state
            field name or in a reference).
        SpecError: Unknown style, an existing file (``overwrite`` False), or the files
            cannot be written.
    """
    if style not in STYLES:
        raise SpecError(f"unknown style {style!r}; use one of {', '.join(STYLES)}")
    mission = spec if isinstance(spec, MissionSpec) else None
    allowed = normalise_prefixes(allowed_modules)
    allowed_tools = normalise_prefixes(allowed_tool_modules)
    if mission is not None:
        ensure_valid_mission(
            mission, allowed_modules=allowed, allowed_tool_modules=allowed_tools
        )
        graph = mission.graph
    else:
        graph = ensure_valid_graph(
            spec.to_dict(), allowed_modules=allowed, allowed_tool_modules=allowed_tools
        )
    _inexpressible(graph, mission)
    base = _module_name(graph, mission)
    folder = Path(out_dir)
    # Every text is built before anything is written: a spec codegen refuses leaves no files.
    if style == "simple":
        files = {folder / f"{base}.py": _simple_module(graph, mission)}
    else:
        title = mission.mission_id if mission else graph.id
        package = folder / base
        files = {
            package / "mission.json": spec_to_json(spec),
            package
            / "__init__.py": _PROD_INIT.format(
                docstring=_docstring(_PROD_INIT_DOC.format(title=title)),
                allowed=allowed,
                allowed_tools=allowed_tools,
                package=base,
            ),
            package / "tools.py": _tools_module(graph, mission),
            package / "__main__.py": _PROD_MAIN.format(package=base),
        }
    existing = [str(path) for path in files if path.exists()]
    if existing and not overwrite:
        raise SpecError(f"{existing[0]} already exists (use --force to overwrite)")
    for path in files:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError(
                f"cannot create {path.parent}: {exc.strerror or exc}"
            ) from None
        write_text_atomic(path, files[path])
    return list(files)
