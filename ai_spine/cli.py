"""The ``ai-spine`` command line: the client's methods as sub-commands, JSON on stdout.

Exit codes: 0 success; 1 the API or the network failed (including a failed execution);
2 bad usage or invalid input; 130 interrupted. Errors are one line on stderr, never a traceback.
``ai-spine serve ...`` is handed to ``ai_spine.serve_cli.serve_main``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence

from ai_spine import constants
from ai_spine.__version__ import __version__
from ai_spine.client import AISpine
from ai_spine.exceptions import AISpineError, ValidationError

__all__ = ["main", "build_parser"]

PROG = "ai-spine"


class _UsageError(Exception):
    """Raised by the parser instead of printing usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _json_arg(text: str) -> Dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({exc.msg} at char {exc.pos})"
        )
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object, got {type(value).__name__}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (exposed for documentation and tests).

    Returns:
        The ``ai-spine`` parser.
    """
    parser = _Parser(prog=PROG, description="Command line client for the AI Spine API.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _global_options(parser, argparse.SUPPRESS, real_defaults=True)
    # The global options are accepted after the command too (`ai-spine health --timeout 5`).
    common = _Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS, real_defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    add = sub.add_parser

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return add(name, help=help_text, parents=[common])

    sub.required = True
    command("health", "GET /health")
    command("status", "GET /status")
    command("metrics", "GET /metrics")
    flows = command("flows", "list flows, or show one")
    flows.add_argument("flow_id", nargs="?", help="show this flow")
    agents = command("agents", "list agents, or show one")
    agents.add_argument("agent_id", nargs="?", help="show this agent")
    executions = command("executions", "list recent executions")
    executions.add_argument("--limit", type=int, default=constants.DEFAULT_LIST_LIMIT)
    executions.add_argument("--offset", type=int, default=0)
    executions.add_argument("--status", choices=constants.EXECUTION_STATUSES)
    execute = command("execute", "start a flow (and optionally wait for it)")
    execute.add_argument("flow_id")
    execute.add_argument(
        "--input", type=_json_arg, default={}, help="input_data as JSON"
    )
    execute.add_argument(
        "--metadata", type=_json_arg, default=None, help="metadata as JSON"
    )
    execute.add_argument("--idempotency-key", default=None, help="makes retries safe")
    execute.add_argument("--wait", action="store_true", help="wait until it is final")
    _wait_options(execute)
    get = command("get", "show an execution")
    get.add_argument("execution_id")
    wait = command("wait", "wait for an execution to finish")
    wait.add_argument("execution_id")
    _wait_options(wait)
    cancel = command("cancel", "cancel an execution")
    cancel.add_argument("execution_id")
    add("serve", help="run a local AI Spine server (see: ai-spine serve --help)")
    return parser


def _global_options(
    parser: argparse.ArgumentParser, suppress: str, real_defaults: bool
) -> None:
    def default(value: Any) -> Any:
        return value if real_defaults else suppress

    parser.add_argument(
        "--base-url",
        default=default(None),
        help=f"API root (default: ${constants.ENV_BASE_URL} or {constants.DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=default(None),
        help=f"bearer token (default: ${constants.ENV_API_KEY})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(constants.DEFAULT_TIMEOUT),
        help=f"seconds per HTTP attempt (default: {constants.DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=default(constants.DEFAULT_MAX_RETRIES),
        help=f"retries after the first attempt (default: {constants.DEFAULT_MAX_RETRIES})",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="log requests (redacted) to stderr",
    )


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=constants.DEFAULT_WAIT_TIMEOUT,
        help="seconds to wait (default: %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=constants.DEFAULT_POLL_INTERVAL,
        help="seconds between polls (default: %(default)s)",
    )


def _run(args: argparse.Namespace) -> Any:
    with AISpine(  # an unset or empty --api-key falls back to $AI_SPINE_API_KEY there
        api_key=args.api_key or None,
        base_url=args.base_url,
        timeout=args.timeout,
        max_retries=args.max_retries,
        debug=args.debug,
    ) as client:
        commands: Dict[str, Callable[[], Any]] = {
            "health": client.health_check,
            "status": client.get_status,
            "metrics": client.get_metrics,
            # `is None`, not truthiness: `flows ''` is a bad id (exit 2), not "list them all".
            "flows": lambda: (
                client.list_flows()
                if args.flow_id is None
                else client.get_flow(args.flow_id)
            ),
            "agents": lambda: (
                client.list_agents()
                if args.agent_id is None
                else client.get_agent(args.agent_id)
            ),
            "executions": lambda: client.list_executions(
                args.limit, args.offset, status=args.status
            ),
            "execute": lambda: _execute(client, args),
            "get": lambda: client.get_execution(args.execution_id),
            "wait": lambda: client.wait_for_execution(
                args.execution_id, args.wait_timeout, args.interval
            ),
            "cancel": lambda: client.cancel_execution(args.execution_id),
        }
        return commands[args.command]()


def _execute(client: Any, args: argparse.Namespace) -> Any:
    started = client.execute_flow(
        args.flow_id, args.input, args.metadata, idempotency_key=args.idempotency_key
    )
    if not args.wait or started.get("status") == "completed":
        return started
    return client.wait_for_execution(
        started["execution_id"], args.wait_timeout, args.interval
    )


def _serve(argv: List[str]) -> int:
    try:
        serve_cli = importlib.import_module(
            "ai_spine.serve_cli"
        )  # lazy: needs spark_core
    except ImportError as exc:
        if exc.name not in (
            "ai_spine.serve_cli",
            "ai_spine.server",
            "ai_spine.local",
            "spark_core",
        ):
            raise
        return _fail(f"serve is not available ({exc.name} is missing)", 2)
    return int(serve_cli.serve_main(argv))


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``ai-spine`` command line.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit code (0 ok, 1 API/network failure, 2 usage or validation error).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "serve":
        return _serve(args_list[1:])
    try:
        args = build_parser().parse_args(args_list)
    except _UsageError as exc:
        return _fail(f"{exc} (see {PROG} --help)", 2)
    except SystemExit as exc:  # --help / --version printed and asked to exit
        return int(exc.code or 0)
    if args.command == "serve":
        return _fail(f"'serve' must be the first argument: {PROG} serve [OPTIONS]", 2)
    try:
        result = _run(args)
    except ValidationError as exc:
        if exc.status_code is None:  # caught before sending: a usage problem
            return _fail(str(exc), 2)
        return _fail(f"{type(exc).__name__}: {exc}", 1)
    except AISpineError as exc:
        return _fail(f"{type(exc).__name__}: {exc}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    try:
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `ai-spine flows | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
