"""``spark-spec``: generate, validate, simulate, compile, package and deploy mission specs.

Run ``spark-spec --help`` (or ``python -m spark_core.cli --help``). Output is readable text;
``--json`` gives machine-readable output. Errors are one line on stderr, never a traceback.

Exit status: 0 success; 1 the spec is bad: a spec file given is invalid or does not load, a
simulation fails or cannot run as specified, a mission is not ready to deploy, or
``mission-diff --exit-code`` finds differences; 2 any other error: usage, a file that cannot be
read or written or already exists, a server that cannot be reached or refuses the flow.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    NoReturn,
    Optional,
    Sequence,
    TextIO,
    Tuple,
    Union,
)

from spark_core import __version__
from spark_core.errors import SparkError
from spark_core.spec._parse import ValidationIssue
from spark_core.spec.errors import SpecError, SpecLoadError, SpecValidationError
from spark_core.spec.models import GraphSpec, MissionSpec
from spark_core.spec.serde import (
    load_spec,
    parse_json,
    read_json_file,
    spec_to_json,
    write_text_atomic,
)

__all__ = ["main", "build_parser"]

PROG = "spark-spec"
DEFAULT_URL = "http://127.0.0.1:8000"


class UsageError(Exception):
    """Bad command-line usage (reported on one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        command = self.prog[len(PROG) :].strip()
        raise UsageError(f"{command}: {message}" if command else message)


class _ReaderGone(Exception):
    """stdout's reader went away (``spark-spec ... | head``): not an error."""


def _out(text: str, stream: Optional[TextIO] = None) -> None:
    try:
        (stream or sys.stdout).write(text if text.endswith("\n") else text + "\n")
    except BrokenPipeError as exc:  # apart from a server's socket breaking (exit 2)
        raise _ReaderGone() from exc


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise _ReaderGone() from exc


def _emit_json(data: Any) -> None:
    _out(json.dumps(data, indent=2, sort_keys=False))


def _issue_line(issue: ValidationIssue) -> str:
    return f"  {issue.severity:<7} {issue}"


def _load(path: str) -> Union[GraphSpec, MissionSpec]:
    return load_spec(path)


def _load_mission(path: str) -> MissionSpec:
    spec = _load(path)
    if not isinstance(spec, MissionSpec):
        issue = ValidationIssue("mission_id", "is required: this is a graph spec")
        raise SpecValidationError([issue], source=path)
    return spec


def _allowed(args: argparse.Namespace) -> Tuple[List[str], List[str]]:
    """The node class and tool module prefixes the options allow.

    ``--allow-module`` covers node classes and tools alike, as ``ai-spine serve``'s does;
    ``--allow-tool-module`` covers tools (and simulation handlers) only.
    """
    from spark_core.spec.allowlist import DEFAULT_ALLOWED_MODULES

    modules = list(getattr(args, "allow_module", None) or [])
    tools = modules + list(getattr(args, "allow_tool_module", None) or [])
    return list(DEFAULT_ALLOWED_MODULES) + modules, tools


def _loader(args: argparse.Namespace) -> Any:
    from spark_core.kit.import_path import current_directory_first
    from spark_core.spec.loader import SpecLoader

    current_directory_first()  # --allow-module names the user's modules, as export does
    modules, tools = _allowed(args)
    return SpecLoader(modules, allowed_tool_modules=tools)


def _check_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise SpecError(f"{path} already exists (use --force to overwrite)")


# --------------------------------------------------------------------------- commands
def _cmd_mission_generate(args: argparse.Namespace) -> int:
    """``mission-generate``: write a mission scaffold."""
    from spark_core.spec.generate import generate_mission

    graph = None
    if args.graph:
        loaded = _load(args.graph)
        graph = loaded.graph if isinstance(loaded, MissionSpec) else loaded
    plan = args.plan.split(",") if args.plan is not None else None
    mission = generate_mission(
        args.description,
        mission_id=args.mission_id,
        strategy=args.strategy,
        graph=graph,
        plan=plan,
        version=args.version,
    )
    from spark_core.spec.validation import validate_mission

    errors = [i for i in validate_mission(mission) if i.severity == "error"]
    if errors:
        raise SpecValidationError(errors)
    if args.output is None:
        _out(spec_to_json(mission))
        return 0
    target = Path(args.output)
    _check_output(target, args.force)
    write_text_atomic(target, spec_to_json(mission))
    summary = {
        "path": str(target),
        "mission_id": mission.mission_id,
        "version": mission.version,
        "nodes": [n.id for n in mission.graph.nodes],
        "plan": [s.id for s in mission.plan.steps] if mission.plan else [],
        "strategies": [b.strategy.type for b in mission.strategies],
    }
    if args.json:
        _emit_json(summary)
    else:
        _out(
            f"wrote {target}: mission {mission.mission_id} {mission.version}, "
            f"{len(summary['nodes'])} node(s), plan {' -> '.join(summary['plan'])}"
        )
    return 0


def _cmd_mission_validate(args: argparse.Namespace) -> int:
    """``mission-validate``: check a spec; exit 1 when invalid."""
    from spark_core.spec.validation import validate_spec

    semantic = args.semantic or args.check_deployment
    modules, tools = _allowed(args)
    try:
        data = read_json_file(args.file)
    except (
        SpecValidationError
    ) as exc:  # not JSON at all: report it as the validation result
        issues = list(exc.issues)
        kind = "spec"
    else:
        # Every reference is checked against the modules allowed, as a server loading
        # the spec would; --semantic adds the graph and plan checks.
        issues = validate_spec(
            data,
            semantic=semantic,
            check_deployment=args.check_deployment,
            allowed_modules=modules,
            allowed_tool_modules=tools,
        )
        kind = "mission" if isinstance(data, dict) and "mission_id" in data else "graph"
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity == "warning"]
    valid = not errors and not (args.strict and warnings)
    if args.json:
        _emit_json(
            {
                "file": args.file,
                "kind": kind,
                "valid": valid,
                "semantic": semantic,
                "errors": len(errors),
                "warnings": len(warnings),
                "issues": [i.to_dict() for i in issues],
            }
        )
    else:
        verdict = "valid" if valid else "INVALID"
        scope = (
            ""
            if semantic
            else " (structure only; add --semantic for graph/plan checks)"
        )
        _out(
            f"{args.file}: {verdict} {kind}: {len(errors)} error(s), "
            f"{len(warnings)} warning(s){scope}"
        )
        for issue in issues:
            _out(_issue_line(issue))
    return 0 if valid else 1


def _cmd_compile(args: argparse.Namespace) -> int:
    """``compile``: write Python source for a spec."""
    from spark_core.spec.codegen import compile_spec

    spec = _load(args.file)
    modules, tools = _allowed(args)
    files = compile_spec(
        spec,
        args.output,
        style=args.style,
        allowed_modules=tuple(modules),
        allowed_tool_modules=tuple(tools),
        overwrite=args.force,
    )
    if args.json:
        _emit_json({"style": args.style, "files": [str(f) for f in files]})
    else:
        _out(f"compiled {args.file} ({args.style}):")
        for path in files:
            _out(f"  {path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """``export MODULE:FACTORY``: describe a live graph as a spec."""
    from spark_core.graphs import Graph
    from spark_core.kit.import_path import current_directory_first
    from spark_core.spec.loader import export_graph
    from spark_core.spec.validation import is_reference

    if not is_reference(args.factory):
        raise UsageError(f"export: expected MODULE:FACTORY, got {args.factory!r}")
    module_name, attribute = args.factory.split(":", 1)
    # The user named this module explicitly on the command line: import it like `python -m`.
    current_directory_first()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"cannot import {module_name!r}: {exc}") from None
    factory = getattr(module, attribute, None)
    if factory is None:
        raise SpecError(f"{module_name} has no {attribute!r}")
    obj = _call_factory(args.factory, factory) if callable(factory) else factory
    if isinstance(obj, (GraphSpec, MissionSpec)):
        spec: Union[GraphSpec, MissionSpec] = obj
    elif isinstance(obj, Graph):
        spec = export_graph(obj, graph_id=args.graph_id)
    else:
        raise SpecError(f"{args.factory} gave {type(obj).__name__}, not a Graph")
    text = spec_to_json(spec)
    if args.output:
        target = Path(args.output)
        _check_output(target, args.force)
        write_text_atomic(target, text)
        if args.json:
            _emit_json({"path": str(target), "nodes": len(_graph_of(spec).nodes)})
        else:
            _out(
                f"wrote {target}: graph {_graph_of(spec).id} ({len(_graph_of(spec).nodes)} nodes)"
            )
    else:
        _out(text)
    return 0


def _call_factory(reference: str, factory: Any) -> Any:
    """Call a graph factory the user named; anything else is a clear error naming it."""
    from spark_core.graphs import Graph

    if isinstance(factory, (Graph, GraphSpec, MissionSpec)):
        return factory
    try:  # one that needs arguments fails before its body runs (a TypeError)
        return factory()
    except (
        Exception
    ) as exc:  # the user's code: report it on one line, never a traceback
        raise SpecError(
            f"{reference} is not a graph factory: calling it failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _graph_of(spec: Union[GraphSpec, MissionSpec]) -> GraphSpec:
    return spec.graph if isinstance(spec, MissionSpec) else spec


@contextlib.contextmanager
def _approval_store(args: argparse.Namespace) -> Iterator[Any]:
    from spark_core.governance.approvals import ApprovalStore
    from spark_core.graphs.backends import SQLiteStateBackend, StateBackend
    from spark_core.pgconnect import is_dsn

    backend: StateBackend
    kind = "postgresql" if is_dsn(args.state) else "sqlite"
    if args.backend not in (None, kind):
        raise UsageError(
            f"--backend {args.backend} does not match --state (a {kind} "
            f"{'DSN' if kind == 'postgresql' else 'file'})"
        )
    if kind == "postgresql":
        from spark_core.graphs.postgres import PostgresStateBackend

        backend = PostgresStateBackend(args.state, schema=args.schema)
    else:
        path = Path(args.state)
        if not path.is_file():
            raise SpecError(f"state file not found: {path}")
        backend = SQLiteStateBackend(str(path))
    try:
        yield ApprovalStore.from_backend(backend)
    finally:
        backend.close()  # main() may run many times in one process


def _approval_dict(request: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = request.to_dict()
    return data


def _cmd_approval_list(args: argparse.Namespace) -> int:
    """``approval-list``: show approval requests stored in a SQLite file or PostgreSQL."""
    status = None if args.status == "all" else args.status
    with _approval_store(args) as store:
        requests = store.list_sync(status, run_id=args.run_id)
    if args.json:
        _emit_json([_approval_dict(r) for r in requests])
        return 0
    if not requests:
        _out(f"no {'' if status is None else status + ' '}approval requests")
        return 0
    for r in requests:
        line = f"{r.id}  {r.status:<8}  {r.action} {r.resource}"
        if r.run_id:
            line += f"  run={r.run_id}"
        if r.node_id:
            line += f" node={r.node_id}"
        if r.reason:
            line += f"  ({r.reason})"
        _out(line)
    return 0


def _cmd_approval_resolve(args: argparse.Namespace) -> int:
    """``approval-resolve``: approve or reject one request."""
    with _approval_store(args) as store:
        request = store.resolve_sync(
            args.id, args.status, reviewer=args.reviewer, notes=args.note
        )
    if args.json:
        _emit_json(_approval_dict(request))
    else:
        _out(f"{request.id}: {request.status} by {request.reviewer or 'unknown'}")
    return 0


def _parse_input(text: Optional[str]) -> Any:
    """The ``--input`` value: JSON text or ``@file``; bad JSON is a usage error (2)."""
    if text is None:
        return None
    path = text[1:] if text.startswith("@") else None
    try:
        if path is not None:
            return read_json_file(path)
        return parse_json(text, source="--input")
    except SpecValidationError as exc:
        what = "--input" if path is None else f"--input file {path}"
        raise UsageError(f"{what} is not valid JSON: {exc.issues[0]}") from None


def _cmd_simulation_run(args: argparse.Namespace) -> int:
    """``simulation-run``: run a mission with simulated tools; exit 1 if the run fails."""
    from spark_core.spec.simulation import run_simulation

    spec = _load(args.file)
    inputs = _parse_input(args.input)
    loader = _loader(args)  # a bad --allow-module is usage (2), not the spec
    try:
        report = run_simulation(
            spec, inputs, loader=loader, allow_real_tools=args.allow_real_tools
        )
    except SpecError as exc:  # the spec cannot run as it is (no stand-in, disabled...)
        _out(f"{PROG}: error: {args.file}: {_one_line(str(exc))}", sys.stderr)
        return 1
    if args.json:
        _emit_json(report.to_dict())
        return 0 if report.ok else 1
    name = report.mission_id or report.graph_id
    _out(f"simulation of {name}: {report.status} (run {report.run_id})")
    if report.error:
        _out(f"  error: {report.error}")
    if report.tool_calls:
        _out("  simulated tools:")
        for tool, count in report.tool_calls.items():
            _out(f"    {tool}: {count} call(s)")
    else:
        _out("  simulated tools: none")
    if report.real_tools:
        _out(f"  real tools (not simulated): {', '.join(report.real_tools)}")
    if report.model_calls:
        _out("  scripted models:")
        for node_id, count in report.model_calls.items():
            _out(f"    {node_id}: {count} call(s)")
    if report.real_models:
        _out(f"  real models (not simulated): {', '.join(report.real_models)}")
    if report.plan:
        steps = report.plan.get("steps", [])
        done = sum(
            1 for s in steps if isinstance(s, dict) and s.get("status") == "completed"
        )
        _out(f"  plan: {done}/{len(steps)} step(s) completed")
        for step in steps:
            if isinstance(step, dict):
                _out(f"    [{step.get('status', '?')}] {step.get('id')}")
    _out("  output: " + json.dumps(report.output, sort_keys=True, default=str)[:2000])
    return 0 if report.ok else 1


def _cmd_mission_diff(args: argparse.Namespace) -> int:
    """``mission-diff``: structural differences between two specs."""
    from spark_core.spec.diff import diff_specs, render_html, render_text

    if args.json and args.format not in (None, "json"):
        raise UsageError(f"mission-diff: --json conflicts with --format {args.format}")
    fmt = args.format or ("json" if args.json else "text")
    target = Path(args.output) if args.output else None
    if target is not None:
        _check_output(target, args.force)
    old, new = _load(args.a), _load(args.b)
    changes = diff_specs(old.to_dict(), new.to_dict())
    if fmt == "json":
        text = json.dumps(
            {"a": args.a, "b": args.b, "changes": [c.to_dict() for c in changes]},
            indent=2,
        )
    elif fmt == "html":
        text = render_html(changes, title=f"{args.a} -> {args.b}")
    else:
        text = render_text(changes)
    if target is not None:
        write_text_atomic(target, text if text.endswith("\n") else text + "\n")
        _out(f"wrote {target}: {len(changes)} change(s)")
    else:
        _out(text)
    return 1 if (args.exit_code and changes) else 0


def _cmd_mission_package(args: argparse.Namespace) -> int:
    """``mission-package``: build the deployable zip."""
    from spark_core.spec.package import build_package
    from spark_core.spec.validation import ensure_valid_mission

    mission = ensure_valid_mission(_load_mission(args.file))
    target = Path(args.output)
    _check_output(target, args.force)
    manifest = build_package(mission, target, include_deps=args.include_deps)
    if args.json:
        _emit_json({"path": str(target), "manifest": manifest})
    else:
        _out(f"wrote {target}: {mission.mission_id} {mission.version}")
        for name, info in manifest["files"].items():
            _out(f"  {name:<40} {info['size']:>8} B  sha256:{info['sha256'][:16]}")
        _out("  manifest.json")
    return 0


def _cmd_mission_deploy(args: argparse.Namespace) -> int:
    """``mission-deploy``: readiness checks, then register the flow (unless --dry-run)."""
    from spark_core.spec.deploy import (
        deploy_mission,
        deployment_readiness,
        not_sent,
        server_modules,
    )

    if not 0 < args.timeout < math.inf:  # also refuses nan
        raise UsageError(
            f"mission-deploy: --timeout must be > 0 and finite, got {args.timeout}"
        )
    mission = _load_mission(args.file)
    issues = deployment_readiness(mission, args.target, loader=_loader(args))
    errors = [i for i in issues if i.severity == "error"]
    ready = not errors
    url = args.url or os.environ.get("AI_SPINE_BASE_URL") or DEFAULT_URL
    result: Dict[str, Any] = {
        "mission_id": mission.mission_id,
        "version": mission.version,
        "target": args.target,
        "ready": ready,
        "issues": [i.to_dict() for i in issues],
        "dry_run": args.dry_run,
        "deployed": False,
        "server_must_allow": server_modules(mission),
        "not_sent": not_sent(mission),
    }
    if ready and not args.dry_run:
        flow = deploy_mission(
            mission,
            url,
            api_key=os.environ.get("AI_SPINE_API_KEY") or None,
            # A finite timeout beyond TIMEOUT_MAX (1e300) overflows the socket's.
            timeout=min(args.timeout, threading.TIMEOUT_MAX),
        )
        result.update(deployed=True, url=url, flow=flow)
    if args.json:
        _emit_json(result)
    else:
        verdict = "ready" if ready else "NOT ready"
        _out(f"{mission.mission_id} {mission.version} -> {args.target}: {verdict}")
        for issue in issues:
            _out(_issue_line(issue))
        if result["not_sent"]:
            _out(
                "  not sent (the server runs the graph alone): "
                + ", ".join(result["not_sent"])
            )
        if result["deployed"]:
            _out(f"registered flow {mission.mission_id!r} with {url}")
        elif ready:
            _out("dry run: nothing deployed")
    return 0 if ready else 1


# --------------------------------------------------------------------------- rsi
def _cmd_rsi_run(args: argparse.Namespace) -> int:
    """``rsi-run``: analyze, hypothesize, validate, A/B test and (with --deploy) deploy."""
    from spark_core.spec.loader import DEFAULT_ALLOWED_MODULES
    from spark_core.rsi import (
        ABTestConfig,
        ExperienceDatabase,
        RSIMetaGraph,
        RSIMetaGraphConfig,
        SafetyPolicy,
    )

    if args.deploy and not args.repository:
        raise UsageError("rsi-run: --deploy needs --repository DIR")
    if args.max_hypotheses < 0:
        raise UsageError("rsi-run: --max-hypotheses must be >= 0")
    if not Path(args.experience_db).is_file():
        raise UsageError(f"rsi-run: no experience database at {args.experience_db}")
    inputs = _parse_input(args.inputs)
    if inputs is not None and not isinstance(inputs, list):
        raise UsageError("rsi-run: --inputs must be a JSON list of run inputs")
    spec = _load(args.file)
    mission_id = spec.mission_id if isinstance(spec, MissionSpec) else spec.id
    version = spec.version if isinstance(spec, MissionSpec) else "1.0.0"
    _loader(args)  # a bad --allow-module is usage (2), not the spec
    safety = SafetyPolicy(
        allowed_modules=tuple(DEFAULT_ALLOWED_MODULES) + tuple(args.allow_module or ()),
        allowed_tool_modules=tuple(args.allow_tool_module or ()),
    )
    config = RSIMetaGraphConfig(
        graph_id=args.graph_id or mission_id,
        graph_version=args.graph_version or version,
        analysis_window_hours=args.window_hours,
        max_hypotheses=args.max_hypotheses,
        deploy=args.deploy,
        repository=args.repository,
        safety=safety,
        ab_test=ABTestConfig(min_samples=args.min_samples, seed=args.seed),
    )
    model = None
    if args.model:
        from spark_core.agents import model_from_spec

        model = model_from_spec(args.model)
    database = ExperienceDatabase(args.experience_db)
    database.initialize_sync()
    try:
        rsi = RSIMetaGraph(config, database, model)
        summary = rsi.run_sync(spec, inputs=inputs)
    finally:
        database.close()
    if args.json:
        _emit_json(summary.to_dict())
    else:
        _out(str(summary))
    return 0


def _cmd_rsi_history(args: argparse.Namespace) -> int:
    """``rsi-history``: past RSI runs (experience database) and versions (repository)."""
    from spark_core.rsi import ExperienceDatabase, SpecRepository

    if not args.experience_db and not args.repository:
        raise UsageError("rsi-history: give --experience-db, --repository or both")
    result: Dict[str, Any] = {}
    if args.experience_db:
        if not Path(args.experience_db).is_file():
            raise UsageError(
                f"rsi-history: no experience database at {args.experience_db}"
            )
        database = ExperienceDatabase(args.experience_db)
        database.initialize_sync()
        try:
            result["runs"] = database.rsi_history(args.graph_id, args.limit)
        finally:
            database.close()
    if args.repository:
        repo = SpecRepository(args.repository)
        missions = [args.graph_id] if args.graph_id else repo.missions()
        result["versions"] = {
            m: [r.to_dict() for r in repo.history(m)] for m in missions
        }
    if args.json:
        _emit_json(result)
        return 0
    for item in result.get("runs", []):
        s = item["summary"]
        winner = f", winner {s['winner']}" if s.get("winner") else ""
        _out(
            f"#{item['id']} {item['graph_id']}: {s['status']} "
            f"({s['version_before']} -> {s['version_after']}{winner})"
        )
    if "runs" in result and not result["runs"]:
        _out("no RSI runs recorded")
    for mission_id, records in result.get("versions", {}).items():
        _out(f"{mission_id}:")
        for r in records:
            was = f" (was {r['previous_version']})" if r["previous_version"] else ""
            proposal = f" [{r['proposal_id']}]" if r["proposal_id"] else ""
            _out(f"  {r['action']:<8} {r['version']}{was}{proposal}")
    return 0


def _cmd_rsi_rollback(args: argparse.Namespace) -> int:
    """``rsi-rollback``: make the previous version current again."""
    from spark_core.rsi import SpecRepository

    record = SpecRepository(args.repository).rollback(args.mission_id)
    if args.json:
        _emit_json(record.to_dict())
    else:
        _out(
            f"{record.mission_id}: rolled back to {record.version} "
            f"(was {record.previous_version})"
        )
        _out(record.diff)
    return 0


def _add_rsi_commands(sub: Any, common: argparse.ArgumentParser, loading: Any) -> None:
    p = sub.add_parser(
        "rsi-run",
        parents=[common, loading],
        help="improve a spec from its recorded runs (analyze, propose, validate, A/B test)",
    )
    p.add_argument("file", metavar="SPEC")
    p.add_argument("--experience-db", required=True, metavar="FILE")
    p.add_argument("--deploy", action="store_true", help="deploy the winner")
    p.add_argument(
        "--repository", metavar="DIR", help="spec versions folder (for --deploy)"
    )
    p.add_argument("--max-hypotheses", type=int, default=3, metavar="N")
    p.add_argument(
        "--graph-id", help="id the runs are recorded under (default: the spec's)"
    )
    p.add_argument(
        "--graph-version",
        help="version the runs are recorded under (default: the spec's)",
    )
    p.add_argument("--window-hours", type=float, default=24.0, metavar="H")
    p.add_argument("--min-samples", type=int, default=20, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--inputs", metavar="JSON", help="A/B inputs: a JSON list (or @file.json)"
    )
    p.add_argument(
        "--model", help="also ask this OpenAI-compatible model for proposals"
    )
    p.set_defaults(func=_cmd_rsi_run)

    p = sub.add_parser(
        "rsi-history", parents=[common], help="past RSI runs and versions"
    )
    p.add_argument("--experience-db", metavar="FILE")
    p.add_argument("--repository", metavar="DIR")
    p.add_argument("--graph-id")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=_cmd_rsi_history)

    p = sub.add_parser(
        "rsi-rollback", parents=[common], help="make the previous spec version current"
    )
    p.add_argument("mission_id")
    p.add_argument("--repository", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_rsi_rollback)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """Build the ``spark-spec`` argument parser.

    Returns:
        The parser (errors raise :class:`UsageError` instead of exiting).
    """
    common = _Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", help="machine-readable JSON output"
    )
    loading = _Parser(add_help=False)
    loading.add_argument(
        "--allow-module",
        action="append",
        metavar="PREFIX",
        help="allow node classes and tools from this module prefix, as ai-spine serve "
        "--allow-module does (repeatable; every module a spec references must be allowed; "
        "a dangerous standard-library module such as os or subprocess only when named "
        "itself)",
    )
    loading.add_argument(
        "--allow-tool-module",
        action="append",
        metavar="PREFIX",
        help="allow tools/simulation handlers only from this module prefix (repeatable)",
    )

    parser = _Parser(
        prog=PROG,
        description="Graph and mission specs: generate, validate, "
        "simulate, compile, package, deploy.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "mission-generate", parents=[common], help="write a mission scaffold"
    )
    p.add_argument("description")
    p.add_argument("--mission-id")
    p.add_argument(
        "--strategy",
        help="react, chain_of_thought (cot) or plan_and_solve, bound to the graph's "
        "agent nodes",
    )
    p.add_argument(
        "--graph", metavar="FILE", help="use this graph (or mission) spec's graph"
    )
    p.add_argument("--plan", metavar="A,B,C", help="plan step ids in order")
    p.add_argument(
        "--version", default="0.1.0", help="semantic version (default 0.1.0)"
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default: stdout)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=_cmd_mission_generate)

    p = sub.add_parser(
        "mission-validate", parents=[common, loading], help="validate a spec"
    )
    p.add_argument("file")
    p.add_argument(
        "--semantic", action="store_true", help="also check graph/plan meaning"
    )
    p.add_argument(
        "--strict", action="store_true", help="warnings make the spec invalid"
    )
    p.add_argument(
        "--check-deployment", action="store_true", help="also check deployment"
    )
    p.set_defaults(func=_cmd_mission_validate)

    p = sub.add_parser(
        "compile", parents=[common, loading], help="compile a spec to Python"
    )
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--style", choices=["simple", "production"], default="simple")
    p.add_argument(
        "--force", action="store_true", help="overwrite files that already exist"
    )
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("export", parents=[common], help="export a live graph to a spec")
    p.add_argument(
        "factory",
        metavar="MODULE:FACTORY",
        help="a function returning a Graph (the module is imported)",
    )
    p.add_argument("-o", "--output", metavar="FILE")
    p.add_argument("--graph-id")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_export)

    for name, helptext in (
        ("approval-list", "list approval requests"),
        ("approval-resolve", "approve or reject a request"),
    ):
        p = sub.add_parser(name, parents=[common], help=helptext)
        if name == "approval-resolve":
            p.add_argument("id")
        # A durable backend only: approvals are resolved from another process than the
        # paused run's.
        p.add_argument(
            "--state",
            required=True,
            metavar="FILE_OR_DSN",
            help="SQLite state file, or a postgresql:// DSN",
        )
        p.add_argument(
            "--backend",
            choices=["sqlite", "postgresql"],
            help="state backend (default: postgresql for a DSN, else sqlite)",
        )
        p.add_argument(
            "--schema",
            default="spark",
            help="PostgreSQL schema of the state tables (default: spark)",
        )
        if name == "approval-list":
            p.add_argument(
                "--status",
                default="pending",
                choices=["pending", "approved", "rejected", "all"],
            )
            p.add_argument("--run-id")
            p.set_defaults(func=_cmd_approval_list)
        else:
            p.add_argument("--status", required=True, choices=["approved", "rejected"])
            p.add_argument("--note")
            p.add_argument("--reviewer", default=os.environ.get("USER") or "cli")
            p.set_defaults(func=_cmd_approval_resolve)

    p = sub.add_parser(
        "simulation-run",
        parents=[common, loading],
        help="run a mission with simulated tools",
    )
    p.add_argument("file")
    p.add_argument("--input", metavar="JSON", help="run input as JSON (or @file.json)")
    p.add_argument(
        "--allow-real-tools",
        action="store_true",
        help="let tools without a simulated response, and agent models without a script, "
        "run for real",
    )
    p.set_defaults(func=_cmd_simulation_run)

    p = sub.add_parser("mission-diff", parents=[common], help="compare two specs")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument(
        "--format",
        choices=["text", "json", "html"],
        help="output format (default text; --json is --format json)",
    )
    p.add_argument("-o", "--output", metavar="FILE")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument(
        "--exit-code", action="store_true", help="exit 1 when the specs differ"
    )
    p.set_defaults(func=_cmd_mission_diff)

    p = sub.add_parser(
        "mission-package", parents=[common], help="build a deployable zip"
    )
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, metavar="ZIP")
    p.add_argument("--include-deps", action="store_true")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_mission_package)

    p = sub.add_parser(
        "mission-deploy",
        parents=[common, loading],
        help="check readiness and register the flow with an AI Spine server",
    )
    p.add_argument("file")
    p.add_argument(
        "--target", required=True, choices=["development", "staging", "production"]
    )
    p.add_argument(
        "--dry-run", action="store_true", help="only run the readiness checks"
    )
    p.add_argument(
        "--url", help=f"server base URL (default $AI_SPINE_BASE_URL or {DEFAULT_URL})"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    p.set_defaults(func=_cmd_mission_deploy)
    _add_rsi_commands(sub, common, loading)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``spark-spec``.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 success, 1 the spec is bad (invalid or not loading spec file,
        failed simulation, not ready to deploy, differences with ``--exit-code``), 2 any
        other error (usage, files, the server).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        _out(f"{PROG}: error: {_one_line(str(exc))} (see {PROG} --help)", sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    status = 2
    try:
        result: int = args.func(args)
        _flush_stdout()
        return result
    except _ReaderGone:
        # As `ai-spine` does: stop writing, and keep Python's exit flush from failing too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as exc:
        message = f"{PROG}: error: {exc}"
    except SpecValidationError as exc:
        errors = [i for i in exc.issues if i.severity == "error"] or exc.issues
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        source = exc.source or getattr(args, "file", None)
        where = f"{source}: " if source else ""
        message = f"{PROG}: error: {where}invalid spec: {errors[0]}{more}"
        # A spec file that is bad: 1. A spec built from the arguments (generate): usage.
        status = 1 if source else 2
    except SpecLoadError as exc:
        where = f"{args.file}: " if getattr(args, "file", None) else ""
        message = f"{PROG}: error: {where}{exc}"
        status = 1 if where else 2
    except (SparkError, OSError, sqlite3.Error, ValueError) as exc:
        message = f"{PROG}: error: {exc}"
    except KeyboardInterrupt:
        message, code = f"{PROG}: interrupted", 130
        _out(message, sys.stderr)
        return code
    except Exception as exc:  # never a traceback on the terminal
        message = f"{PROG}: internal error: {type(exc).__name__}: {exc}"
    _out(_one_line(message), sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
