"""Benchmark ``ai-spine serve`` under load and against slow clients (prints figures; not a test).

Each figure is measured against a real ``ai-spine serve --demo`` on 127.0.0.1, started in
another process from a source tree (this checkout by default; ``--compare OTHER_TREE`` runs
the same figures against another checkout too and prints both side by side):

1. ``GET /health`` from 50 concurrent clients opening a new connection per request:
   requests/second, p50, p99, the slowest, and how many took 1 s or more (a listen queue
   that overflows makes a client wait for a SYN retransmit, 1 s at least).
2. The same 50 clients, each on one keep-alive connection.
3. The server's resident memory (VmRSS) at start and after 200 executions of ~1 MiB each,
   then the size of ``GET /api/v1/executions?limit=1000`` and the peak memory (VmHWM)
   after building it.
4. How long the server holds a connection that sent half of its request headers (capped by
   ``--hold-cap`` seconds).

Usage::

    python bench/server.py [--quick] [--compare PATH_TO_OTHER_TREE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS = 50
PROCESSES = 5  # client processes, CLIENTS // PROCESSES threads each (not GIL-bound)
MIB = 1024 * 1024


class Server:
    """``ai-spine serve --demo`` from the source tree ``root``, on a free loopback port."""

    def __init__(self, root: str) -> None:
        env = dict(os.environ, PYTHONPATH=root)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ai_spine.cli", "serve", "--demo", "--port", "0"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://([0-9.]+):(\d+)", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"server did not start: {line!r}")
        self.host, self.port = match.group(1), int(match.group(2))

    def memory(self) -> Tuple[float, float]:
        """(VmRSS, VmHWM) of the server process, in MB."""
        fields: Dict[str, float] = {}
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) / 1024
        return fields["VmRSS"], fields["VmHWM"]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop within 20 s."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"


def _new_connection_each(host: str, port: int, count: int) -> List[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(REQUEST % b"Connection: close\r\n")
            while sock.recv(65536):
                pass
        latencies.append(time.perf_counter() - started)
    return latencies


def _keep_alive(host: str, port: int, count: int) -> List[float]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", "/health")
        conn.getresponse().read()
        latencies.append(time.perf_counter() - started)
    conn.close()
    return latencies


def _client_process(args: Tuple[str, str, int, int, int]) -> List[float]:
    """One client process: ``threads`` clients, ``count`` requests each."""
    mode, host, port, threads, count = args
    run = _new_connection_each if mode == "new" else _keep_alive
    results: List[List[float]] = [[] for _ in range(threads)]

    def client(slot: int) -> None:
        try:
            results[slot] = run(host, port, count)
        except OSError as exc:  # counted as missing requests
            print(f"  client error: {exc}", file=sys.stderr)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [latency for part in results for latency in part]


def load(server: Server, mode: str, total: int) -> Dict[str, float]:
    """``total`` requests from CLIENTS concurrent clients; figures in ms and requests/s."""
    per_client = max(1, total // CLIENTS)
    args = [
        (mode, server.host, server.port, CLIENTS // PROCESSES, per_client)
    ] * PROCESSES
    started = time.perf_counter()
    with multiprocessing.Pool(PROCESSES) as pool:
        parts = pool.map(_client_process, args)
    wall = time.perf_counter() - started
    latencies = sorted(latency for part in parts for latency in part)
    if not latencies:
        return {"rps": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0, "slow": 0.0, "n": 0.0}
    return {
        "rps": len(latencies) / wall,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max": latencies[-1] * 1000,
        "slow": float(sum(1 for latency in latencies if latency >= 1.0)),
        "n": float(len(latencies)),
    }


def memory(server: Server, executions: int) -> Dict[str, float]:
    """RSS before and after ``executions`` runs of ~1 MiB, and the big listing's cost."""
    rss_start, _ = server.memory()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    # Just under the default 1 MiB body limit once wrapped in JSON.
    blob = "x" * (MIB - 200)
    body = json.dumps({"flow_id": "echo", "input_data": {"blob": blob}})
    ids = []
    for _ in range(executions):
        conn.request(
            "POST",
            "/api/v1/flows/execute",
            body,
            {"Content-Type": "application/json"},
        )
        ids.append(json.loads(conn.getresponse().read())["execution_id"])
    for execution_id in ids:  # every one finished
        while True:
            conn.request("GET", f"/api/v1/executions/{execution_id}")
            answer = json.loads(conn.getresponse().read())
            if answer.get("status") in ("completed", "failed", "cancelled", None):
                break
            time.sleep(0.01)
    rss_after, _ = server.memory()
    conn.request("GET", "/api/v1/executions?limit=1000")
    listing = conn.getresponse().read()
    conn.close()
    _, peak = server.memory()
    return {
        "rss_start": rss_start,
        "rss_after": rss_after,
        "listing_mb": len(listing) / 1e6,
        "listed": float(len(json.loads(listing).get("executions", []))),
        "peak": peak,
    }


def half_sent_hold(server: Server, cap: float) -> float:
    """Seconds until the server closes a connection that sent half its headers (<= cap)."""
    with socket.create_connection((server.host, server.port), timeout=cap) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.perf_counter()
        try:
            while sock.recv(65536):
                pass
        except socket.timeout:
            return float("inf")
        return time.perf_counter() - started


def measure(root: str, quick: bool, cap: float) -> Dict[str, Dict[str, float]]:
    """Every figure for the tree at ``root``, each against a fresh server."""
    total = 500 if quick else 2000
    figures: Dict[str, Dict[str, float]] = {}
    for mode in ("new", "keep"):
        server = Server(root)
        try:
            figures[mode] = load(server, mode, total)
        finally:
            server.stop()
    server = Server(root)
    try:
        figures["memory"] = memory(server, 40 if quick else 200)
        figures["hold"] = {"seconds": half_sent_hold(server, cap)}
    finally:
        server.stop()
    return figures


def _rows(figures: Dict[str, Dict[str, float]]) -> List[Tuple[str, str]]:
    new, keep, mem = figures["new"], figures["keep"], figures["memory"]
    hold = figures["hold"]["seconds"]
    return [
        ("new connection per request: requests/s", f"{new['rps']:,.0f}"),
        (
            "  p50 / p99 / max ms",
            f"{new['p50']:.1f} / {new['p99']:.1f} / {new['max']:.0f}",
        ),
        ("  requests >= 1 s (of n)", f"{new['slow']:.0f} of {new['n']:.0f}"),
        ("keep-alive: requests/s", f"{keep['rps']:,.0f}"),
        (
            "  p50 / p99 / max ms",
            f"{keep['p50']:.1f} / {keep['p99']:.1f} / {keep['max']:.0f}",
        ),
        ("RSS at start, MB", f"{mem['rss_start']:.0f}"),
        ("RSS after the ~1 MiB executions, MB", f"{mem['rss_after']:.0f}"),
        (
            "GET executions?limit=1000: MB, items",
            f"{mem['listing_mb']:.1f}, {mem['listed']:.0f}",
        ),
        ("peak RSS after that listing, MB", f"{mem['peak']:.0f}"),
        (
            "half-sent request held, s",
            "still open" if hold == float("inf") else f"{hold:.1f}",
        ),
    ]


def main() -> None:
    """Parse the arguments, measure, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and runs")
    parser.add_argument(
        "--compare",
        metavar="TREE",
        default=None,
        help="another checkout to measure first (e.g. a copy of main), shown as 'before'",
    )
    parser.add_argument(
        "--hold-cap",
        type=float,
        default=20.0,
        metavar="S",
        help="stop waiting for a half-sent request to be closed after S seconds",
    )
    args = parser.parse_args()
    columns: List[Tuple[str, Dict[str, Dict[str, float]]]] = []
    if args.compare:
        print(f"measuring {args.compare} ...", flush=True)
        columns.append(("before", measure(args.compare, args.quick, args.hold_cap)))
    print(f"measuring {ROOT} ...", flush=True)
    columns.append(("this tree", measure(ROOT, args.quick, args.hold_cap)))
    rows = [_rows(figures) for _, figures in columns]
    width = max(len(label) for label, _ in rows[0])
    print()
    print(f"{'':{width}}  " + "  ".join(f"{name:>22}" for name, _ in columns))
    for i, (label, _) in enumerate(rows[0]):
        cells = "  ".join(f"{r[i][1]:>22}" for r in rows)
        print(f"{label:{width}}  {cells}")


if __name__ == "__main__":
    main()
