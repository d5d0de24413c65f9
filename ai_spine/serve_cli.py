"""``ai-spine serve``: serve local flows over HTTP until SIGINT/SIGTERM.

``ai-spine`` hands ``serve ...`` here (see :mod:`ai_spine.cli`). Errors are one line on
stderr and exit status 2. A server reachable from other machines (a non-loopback ``--host``)
needs ``--api-key`` or an explicit ``--allow-unauthenticated``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Dict, List, Mapping, Optional

from spark_core.kit.import_path import current_directory_first

from ai_spine.exceptions import AISpineError
from ai_spine.local import DEFAULT_MAX_EXECUTIONS, DEFAULT_MAX_MEMORY, LocalSpine
from ai_spine.server.stdlib import (
    DEFAULT_BACKLOG,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    SpineServer,
    is_loopback,
    logger,
)

__all__ = ["serve_main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage dump
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ai-spine serve",
        description="Serve local spark_core flows over HTTP with the AI Spine backend's API.",
    )
    parser.add_argument(
        "--flows",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="flows to serve: a LocalSpine, a {flow_id: graph|factory|spec} dict, or a "
        "zero-argument callable returning one (repeatable)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="TCP port (default 8000; 0 picks a free one)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (or set AI_SPINE_SERVE_API_KEY)",
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="FILE|URL",
        help="journal executions to a SQLite file, or to a postgresql:// URL that several "
        "servers share",
    )
    parser.add_argument("--demo", action="store_true", help="register the demo flows")
    parser.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run each execution as a task on this Dask scheduler's cluster "
        "(e.g. tcp://10.0.0.5:8786; needs the [dask] extra)",
    )
    parser.add_argument(
        "--allow-module",
        action="append",
        default=[],
        metavar="PREFIX",
        help="let spec flows import node classes and tools from this module prefix "
        "(repeatable; default: spark_core node types only, no tools)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,  # None: not given (64), so a LocalSpine from --flows can refuse it
        help="executions running at once (default 64)",
    )
    parser.add_argument(
        "--max-executions",
        type=int,
        default=None,
        metavar="N",
        help=f"finished executions kept in memory (default {DEFAULT_MAX_EXECUTIONS}; older "
        "ones are read back from --db, or forgotten without it; 0: no bound)",
    )
    parser.add_argument(
        "--max-memory",
        type=int,
        default=None,
        metavar="MIB",
        help=f"MiB of finished executions kept in memory (default "
        f"{DEFAULT_MAX_MEMORY // (1024 * 1024)}; 0: no bound)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="S",
        help="seconds a connection has to send its request line and headers "
        f"(default {DEFAULT_HEADER_TIMEOUT:g})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="S",
        help=f"seconds an idle keep-alive connection stays open (default "
        f"{DEFAULT_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=f"connections open at once; more get 503 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=DEFAULT_BACKLOG,
        metavar="N",
        help=f"connections the kernel queues before they are accepted "
        f"(default {DEFAULT_BACKLOG})",
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback --host without --api-key (anyone who can reach it "
        "can run and create flows)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds to let executions finish on shutdown",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every request's method, target and status to stderr (never headers "
        "or bodies; secret-looking query values are replaced by ***)",
    )
    return parser


def _load_object(ref: str) -> Any:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise _UsageError(f"--flows expects MODULE:OBJECT, got {ref!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise _UsageError(
            f"--flows {ref}: cannot import {module_name!r}: {exc}"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _UsageError(
                f"--flows {ref}: {module_name!r} has no {attr!r}"
            ) from None
    return obj


def _load_flows(ref: str) -> Any:
    """Return what ``--flows ref`` names: a LocalSpine or a ``{flow_id: source}`` mapping."""
    obj = _load_object(ref)
    if callable(obj) and not isinstance(obj, LocalSpine) and not _looks_like_graph(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise _UsageError(f"--flows {ref}: calling it failed: {exc}") from None
    if not isinstance(obj, (LocalSpine, Mapping)):
        raise _UsageError(
            f"--flows {ref}: expected a LocalSpine or a dict of flows, got {type(obj).__name__}"
        )
    return obj


def _build_spine(args: argparse.Namespace) -> LocalSpine:
    """The LocalSpine to serve, its flows registered before it reopens ``--db``.

    The flows must be there when the execution store is opened: interrupted runs of a
    durable flow are resumed then, and runs of flows it does not know are marked failed.
    """
    given: List[LocalSpine] = []
    flows: Dict[str, Any] = {}
    for ref in args.flows:
        obj = _load_flows(ref)
        if isinstance(obj, LocalSpine):
            given.append(obj)
            continue
        for flow_id, source in obj.items():
            if flow_id in flows:
                raise _UsageError(f"--flows {ref}: flow {flow_id!r} is given twice")
            flows[flow_id] = source
    if given:
        spine = given[0]
        try:
            _refuse_options_for(given, args)
            for flow_id, source in flows.items():
                spine.register_flow(flow_id, source)
        except BaseException:
            for other in given:
                other.close()  # release their stores before the process exits
            raise
    else:
        spine = LocalSpine(
            flows,
            db=args.db,
            max_concurrency=(
                64 if args.max_concurrency is None else args.max_concurrency
            ),
            max_executions=(
                DEFAULT_MAX_EXECUTIONS
                if args.max_executions is None
                else args.max_executions or None
            ),
            max_memory=(
                DEFAULT_MAX_MEMORY
                if args.max_memory is None
                else args.max_memory * 1024 * 1024 or None
            ),
            allow_modules=args.allow_module,
            executor=_dask_executor(args.dask),
        )
    if args.demo:
        from ai_spine.demo import register_demo_flows

        try:
            register_demo_flows(spine)
        except BaseException:
            spine.close()
            raise
    return spine


def _refuse_options_for(given: List[LocalSpine], args: argparse.Namespace) -> None:
    """A LocalSpine from --flows was configured in Python: refuse what would not apply."""
    if len(given) > 1:
        raise _UsageError("only one --flows may give a LocalSpine")
    for option, value in (
        ("--db", args.db),
        ("--max-concurrency", args.max_concurrency),
        ("--max-executions", args.max_executions),
        ("--max-memory", args.max_memory),
        ("--allow-module", args.allow_module),
        ("--dask", args.dask),
    ):
        if value not in (None, []):
            raise _UsageError(
                f"{option} cannot apply to the LocalSpine given by --flows: pass it to "
                "that LocalSpine in Python instead"
            )


def _dask_executor(address: Optional[str]) -> Any:
    """The ``--dask`` executor, or ``None``; an unreachable scheduler is a usage error."""
    if address is None:
        return None
    from spark_core.errors import SparkError

    try:
        from spark_core.distributed import DaskExecutor

        return DaskExecutor(address)
    except SparkError as exc:
        raise _UsageError(f"--dask: {exc}") from None


def _looks_like_graph(obj: Any) -> bool:
    return hasattr(obj, "nodes") and hasattr(obj, "edges")


def serve_main(argv: List[str]) -> int:
    """Run ``ai-spine serve`` until SIGINT/SIGTERM.

    Args:
        argv: The arguments after ``serve``.

    Returns:
        The exit status: 0 after a clean shutdown, 2 for bad arguments or an unusable address.
    """
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"ai-spine serve: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    # --flows and --allow-module name the user's modules: found as spark-spec finds them.
    current_directory_first()
    api_key = args.api_key or os.environ.get("AI_SPINE_SERVE_API_KEY") or None
    verbose: Optional[logging.Handler] = None
    level = logger.level
    if args.verbose:
        verbose = logging.StreamHandler(sys.stderr)
        verbose.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(verbose)
        logger.setLevel(logging.DEBUG)
    try:
        return _serve(args, api_key)
    finally:  # in-process callers (tests) get the logger back as it was
        if verbose is not None:
            logger.removeHandler(verbose)
            logger.setLevel(level)


def _serve(args: argparse.Namespace, api_key: Optional[str]) -> int:
    spine: Optional[LocalSpine] = None
    try:
        _check_numbers(args)
        if (
            api_key is None
            and not args.allow_unauthenticated
            and not is_loopback(args.host)
        ):
            raise _UsageError(
                f"refusing to serve {args.host} without --api-key: anyone who can reach "
                "it could run and create flows (pass --allow-unauthenticated to do so)"
            )
        spine = _build_spine(args)
        server = SpineServer(
            spine,
            args.host,
            args.port,
            api_key=api_key,
            header_timeout=args.header_timeout,
            idle_timeout=args.idle_timeout,
            max_connections=args.max_connections,
            backlog=args.backlog,
        )
    except (_UsageError, AISpineError, OSError) as exc:
        if spine is not None:  # release its execution store (and loop) before exiting
            spine.close()
        if isinstance(exc, OSError):
            message = f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        else:
            message = str(exc)
        print(f"ai-spine serve: error: {message}", file=sys.stderr)
        return 2
    return _run_until_signalled(server, args.grace)


def _check_numbers(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise _UsageError(f"--port must be 0-65535, got {args.port}")
    for option, value in (
        ("--header-timeout", args.header_timeout),
        ("--idle-timeout", args.idle_timeout),
        ("--max-connections", args.max_connections),
        ("--backlog", args.backlog),
    ):
        if not value > 0 or value == float("inf"):
            raise _UsageError(f"{option} must be a positive number, got {value}")
    if args.max_memory is not None and args.max_memory < 0:
        raise _UsageError(f"--max-memory must be 0 or more, got {args.max_memory}")


def _run_until_signalled(server: SpineServer, grace: float) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    previous: Dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    flows = ", ".join(f["flow_id"] for f in server.spine.list_flows()) or "none"
    auth = " (API key required)" if server.app.requires_key else ""
    print(
        f"ai-spine serve: listening on {server.url}{auth}; flows: {flows}", flush=True
    )
    server.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:  # pragma: no cover - when signals could not be installed
        pass
    finally:
        print("ai-spine serve: shutting down", flush=True)
        server.shutdown(close_spine=True, grace=grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
