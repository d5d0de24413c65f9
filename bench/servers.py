"""Executions/second through one ``ai-spine serve`` against gunicorn workers on PostgreSQL.

Run:  pip install -e ".[postgres,dev]" && python bench/servers.py [--quick] [--dsn DSN]

By default it starts a throwaway PostgreSQL cluster (``tests/pgcluster.py``) and stops it at
the end. Each configuration gets a fresh database and serves the ``echo`` demo flow on a
free loopback port:

* one ``ai-spine serve --db postgresql://...`` process;
* ``gunicorn -w 2`` running ``ai_spine.server.wsgi:make_app`` on the same database;
* both again with ``synchronous_commit=off`` in the DSN: a commit no longer waits for the
  WAL to reach the disk (it survives the server process's crash, not the machine's, as
  SQLite's ``synchronous=NORMAL`` does), so the figure shows what the journal itself costs
  rather than the disk's flush time (three commits per execution: started, running, done);
* for reference, one ``ai-spine serve`` with its journal in a SQLite file.

Client processes (not threads: the client must not be GIL-bound) send ``POST
/api/v1/flows/execute`` over a new connection per request (gunicorn's sync workers close
every connection), then the figure waits until the journal lists every execution
completed: executions/second from the first request to the last completion. The clients
share the machine's cores with the servers and the database. This is a benchmark, not a
test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import pgcluster  # noqa: E402

_LISTENING = re.compile(r"listening on http://[0-9.]+:(\d+)")


def _request(port: int, method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:200]!r}")
        return json.loads(raw)
    finally:
        conn.close()


def _client(args: Tuple[int, int]) -> int:
    port, count = args
    for i in range(count):
        _request(
            port,
            "POST",
            "/api/v1/flows/execute",
            {"flow_id": "echo", "input_data": {"i": i}},
        )
    return count


def _wait_up(port: int, proc: "subprocess.Popen[str]") -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _request(port, "GET", "/health")
            return
        except (OSError, RuntimeError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("server did not start") from None
            time.sleep(0.1)


def _serve(db: str) -> Tuple["subprocess.Popen[str]", int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_spine.cli", "serve", "--demo", "--port", "0"]
        + ["--db", db, "--grace", "1"],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    match = _LISTENING.search(proc.stdout.readline())
    if not match:
        proc.kill()
        raise SystemExit("ai-spine serve did not start")
    port = int(match.group(1))
    _wait_up(port, proc)
    return proc, port


def _gunicorn(db: str, workers: int) -> Tuple["subprocess.Popen[str]", int]:
    exe = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
    if exe is None:
        raise SystemExit("gunicorn is not installed (pip install -e '.[dev]')")
    port = pgcluster.free_port()
    proc = subprocess.Popen(
        [exe, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5"]
        + ["ai_spine.server.wsgi:make_app(demo=True, grace=1)"],
        cwd=str(ROOT),
        env={**os.environ, "AI_SPINE_SERVE_DB": db},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    _wait_up(port, proc)
    return proc, port


def measure(port: int, total: int, clients: int) -> float:
    """Send ``total`` executions from ``clients`` processes; executions/second to done."""
    per = total // clients
    started = time.perf_counter()
    with multiprocessing.Pool(clients) as pool:
        sent = sum(pool.map(_client, [(port, per)] * clients))
    while True:
        page = _request(port, "GET", "/api/v1/executions?status=completed&limit=1")
        if page["total"] >= sent:
            return sent / (time.perf_counter() - started)
        time.sleep(0.01)


def _stop(proc: "subprocess.Popen[str]") -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()


def _fresh_db(admin_dsn: str) -> str:
    import psycopg

    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def _relaxed(dsn: str) -> str:
    """The DSN with ``synchronous_commit=off`` for its sessions (a libpq option)."""
    return dsn + ("&" if "?" in dsn else "?") + "options=-c%20synchronous_commit%3Doff"


def main(argv: Optional[List[str]] = None) -> int:
    """Measure and print a markdown table.

    Args:
        argv: Command-line arguments.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dsn", help="use this server instead of a throwaway cluster")
    parser.add_argument("--quick", action="store_true", help="200 executions, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.executions, args.runs = 200, 1
    cluster = None
    dsn = args.dsn
    if dsn is None:
        cluster = pgcluster.start()
        dsn = cluster.dsn
    rows: List[Tuple[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            configs = [
                (
                    "one `ai-spine serve`, PostgreSQL journal",
                    lambda: _serve(_fresh_db(dsn)),
                ),
                (
                    "gunicorn, 2 workers, one PostgreSQL journal",
                    lambda: _gunicorn(_fresh_db(dsn), 2),
                ),
                (
                    "one `ai-spine serve`, PostgreSQL, synchronous_commit=off",
                    lambda: _serve(_relaxed(_fresh_db(dsn))),
                ),
                (
                    "gunicorn, 2 workers, PostgreSQL, synchronous_commit=off",
                    lambda: _gunicorn(_relaxed(_fresh_db(dsn)), 2),
                ),
                (
                    "one `ai-spine serve`, SQLite journal (reference)",
                    lambda: _serve(os.path.join(tmp, f"{uuid.uuid4().hex}.sqlite")),
                ),
            ]
            for label, start in configs:
                figures = []
                for _ in range(args.runs):
                    proc, port = start()
                    try:
                        figures.append(measure(port, args.executions, args.clients))
                    finally:
                        _stop(proc)
                rows.append((label, sorted(figures)[len(figures) // 2]))
    finally:
        if cluster is not None:
            pgcluster.stop(cluster)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.executions} echo executions from {args.clients} client processes, a new "
        f"connection per request; median of {args.runs} runs\n"
    )
    print("| server | executions/second |")
    print("|---|---|")
    for label, figure in rows:
        print(f"| {label} | {figure:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
