"""Benchmark the client, LocalSpine and the local server (prints figures; not a test).

Measured side by side in one run on loopback:

1. ``AISpine.get_execution`` vs a raw ``requests.Session`` GET of the same URL against
   ``ai-spine serve`` running in another process (target: <= 1.10x), and the same call
   bounded by a deadline, as every poll of ``wait_for_execution`` is.
2. ``import ai_spine`` vs ``import requests`` in fresh interpreters with bytecode caches,
   as after ``pip install`` (target: <= requests + 30 ms), and that ``import ai_spine``
   loads neither ``spark_core`` nor the server.
3. The execute -> wait round trip of a one-node flow: ``LocalSpine`` in-process (target:
   <= 200 us) and ``AISpine`` against the server.
4. The server's requests per second for ``GET /api/v1/executions/{id}`` with 8 concurrent
   keep-alive clients (separate processes, so the client side is not GIL-bound).
5. ``AsyncAISpine.get_execution`` vs a raw ``aiohttp.ClientSession`` GET of the same URL, in
   one event loop (target: <= 1.10x); needs the ``async`` extra.

Usage::

    python bench/client.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Awaitable, Callable, List, Tuple

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ai_spine import AISpine  # noqa: E402
from ai_spine.demo import echo_graph  # noqa: E402
from ai_spine.local import LocalSpine  # noqa: E402


def start_server() -> Tuple["subprocess.Popen[str]", str]:
    """Start ``ai-spine serve --demo --port 0`` and return (process, base URL)."""
    exe = shutil.which("ai-spine")
    command = [exe] if exe else [sys.executable, "-m", "ai_spine.cli"]
    proc = subprocess.Popen(
        command + ["serve", "--demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://[0-9.]+:\d+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, match.group(1)


def per_call(fn: Callable[[], object], n: int) -> float:
    """Mean seconds per call of ``fn`` over ``n`` calls."""
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def bench_overhead(url: str, rounds: int, n: int) -> None:
    """AISpine.get_execution vs a raw requests.Session GET, interleaved in rounds."""
    client = AISpine(base_url=url, max_retries=0)
    # What wait_for_execution's polls pay: every call bounded by a deadline.
    bounded = AISpine(base_url=url, max_retries=0, deadline=30)
    started = client.execute_flow("echo", {"bench": True})
    execution_id = started["execution_id"]
    client.wait_for_execution(execution_id, 10, 0.01)
    session = requests.Session()
    full = f"{url}/api/v1/executions/{execution_id}"
    headers = {"Accept": "application/json", "User-Agent": "bench"}

    def raw() -> object:
        response = session.get(full, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def sdk() -> object:
        return client.get_execution(execution_id)

    def sdk_bounded() -> object:
        return bounded.get_execution(execution_id)

    per_call(raw, 200)
    per_call(sdk, 200)
    per_call(sdk_bounded, 200)
    raw_times: List[float] = []
    sdk_times: List[float] = []
    bounded_times: List[float] = []
    for _ in range(rounds):  # interleaved, so load changes hit all alike
        raw_times.append(per_call(raw, n))
        sdk_times.append(per_call(sdk, n))
        bounded_times.append(per_call(sdk_bounded, n))
    raw_med, sdk_med = statistics.median(raw_times), statistics.median(sdk_times)
    raw_min, sdk_min = min(raw_times), min(sdk_times)
    print(f"1. get_execution per call ({rounds} interleaved rounds of {n} calls)")
    for label, med, best in (
        ("raw requests.Session GET", raw_med, raw_min),
        ("AISpine.get_execution   ", sdk_med, sdk_min),
        (
            "  ... with deadline=30  ",
            statistics.median(bounded_times),
            min(bounded_times),
        ),
    ):
        print(f"   {label} : median {med * 1e6:7.1f} us, best {best * 1e6:7.1f} us")
    print(
        f"   ratio                    : median {sdk_med / raw_med:7.3f}x,  "
        f"best {sdk_min / raw_min:7.3f}x   (target <= 1.10x)"
    )
    client.close()
    bounded.close()
    session.close()


# Fresh interpreters read bytecode caches, as they do after ``pip install`` (which compiles
# them): with PYTHONDONTWRITEBYTECODE set in the environment a source checkout would be
# compiled on every start, and the figure would time the compiler, not the import.
_FRESH_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _fresh(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=_FRESH_ENV,
    )
    return float(out.stdout)


def bench_imports(runs: int) -> None:
    """``import ai_spine`` vs ``import requests``, and what ``import ai_spine`` pulls in."""
    timed = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
    extra = (
        "import requests, time; t = time.perf_counter(); import ai_spine; "
        "print(time.perf_counter() - t)"
    )
    req: List[float] = []
    spine: List[float] = []
    added: List[float] = []
    _fresh(extra)  # writes the bytecode caches, if a source checkout has none yet
    for _ in range(runs):  # interleaved fresh interpreters
        req.append(_fresh(timed.format(m="requests")))
        spine.append(_fresh(timed.format(m="ai_spine")))
        added.append(_fresh(extra))
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, ai_spine; print(sorted(m for m in sys.modules "
            "if m.startswith('spark_core') or m in ('ai_spine.server', 'ai_spine.local')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    r, a, x = statistics.median(req), statistics.median(spine), statistics.median(added)
    print(f"2. import time (median of {runs} fresh interpreters each)")
    print(f"   import requests                     : {r * 1e3:7.1f} ms")
    print(
        f"   import ai_spine (includes requests) : {a * 1e3:7.1f} ms   (+{(a - r) * 1e3:.1f} ms)"
    )
    print(
        f"   import ai_spine after requests      : {x * 1e3:7.1f} ms   (target <= +30 ms)"
    )
    print(f"   engine/server modules loaded by import ai_spine: {check.stdout.strip()}")


def bench_round_trip(url: str, n: int) -> None:
    """execute -> wait for a one-node flow: LocalSpine in-process, AISpine over loopback."""
    with LocalSpine({"echo": echo_graph}) as spine:
        for _ in range(500):  # warm up the loop thread and code paths
            spine.wait_for_execution(
                spine.execute_flow("echo", {"i": 0})["execution_id"]
            )
        samples = []
        for i in range(n):
            t = time.perf_counter()
            spine.wait_for_execution(
                spine.execute_flow("echo", {"i": i})["execution_id"]
            )
            samples.append(time.perf_counter() - t)
    engine = asyncio.run(_engine_only(n))
    hop = _thread_hop(n)
    client = AISpine(base_url=url, max_retries=0)
    remote = []
    for i in range(max(50, n // 20)):
        t = time.perf_counter()
        started = client.execute_flow("echo", {"i": i})
        client.wait_for_execution(started["execution_id"], 10, 0.001)
        remote.append(time.perf_counter() - t)
    client.close()
    print("3. execute -> wait round trip, one-node flow")
    print(
        f"   LocalSpine (in-process)  : median {statistics.median(samples) * 1e6:7.1f} us, "
        f"mean {statistics.fmean(samples) * 1e6:7.1f} us   (target <= 200 us)"
    )
    print(
        f"   of which the engine      : median {engine * 1e6:7.1f} us "
        "(a fresh Graph and its run, no LocalSpine)"
    )
    print(
        f"   floor: a bare thread hop : median {hop * 1e6:7.1f} us "
        "(a coroutine on a loop thread setting an Event the caller waits on)"
    )
    print(
        f"   AISpine -> ai-spine serve: median {statistics.median(remote) * 1e6:7.1f} us, "
        f"mean {statistics.fmean(remote) * 1e6:7.1f} us"
    )


def _thread_hop(n: int) -> float:
    """Median seconds for the two thread handoffs any in-process execute -> wait makes."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def finish(done: threading.Event) -> None:
        done.set()

    samples = []
    for _ in range(n):
        t = time.perf_counter()
        done = threading.Event()
        asyncio.run_coroutine_threadsafe(finish(done), loop)
        done.wait()
        samples.append(time.perf_counter() - t)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
    return statistics.median(samples)


async def _engine_only(n: int) -> float:
    """Median seconds to build the echo graph and run it on a running loop."""
    samples = []
    for i in range(n):
        t = time.perf_counter()
        await echo_graph().run({"i": i}, run_id=str(i))
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def _hammer(args: Tuple[str, int, str, float]) -> int:
    host, port, path, seconds = args
    conn = http.client.HTTPConnection(host, port, timeout=30)
    done = 0
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        done += 1
    conn.close()
    return done


def bench_rps(url: str, seconds: float, clients: int = 8) -> None:
    """Requests per second for GET /api/v1/executions/{id} with ``clients`` processes."""
    client = AISpine(base_url=url, max_retries=0)
    started = client.execute_flow("echo", {"rps": True})
    client.wait_for_execution(started["execution_id"], 10, 0.01)
    client.close()
    host, port = url.rsplit("//", 1)[1].split(":")
    path = f"/api/v1/executions/{started['execution_id']}"
    with multiprocessing.Pool(clients) as pool:
        counts = pool.map(_hammer, [(host, int(port), path, seconds)] * clients)
    total = sum(counts)
    print(
        f"4. server throughput, GET {path.rsplit('/', 1)[0]}/{{id}}, {clients} keep-alive clients"
    )
    print(
        f"   {total / seconds:8.0f} requests/s  ({total} in {seconds:g} s, "
        f"{os.cpu_count()} CPUs shared by server and clients)"
    )


def bench_async_overhead(url: str, rounds: int, n: int) -> None:
    """AsyncAISpine.get_execution vs a raw aiohttp GET, interleaved in rounds."""
    try:
        import aiohttp
    except ImportError:
        print("5. AsyncAISpine: skipped (pip install -e '.[async]')")
        return
    from ai_spine import AsyncAISpine

    with AISpine(base_url=url, max_retries=0) as sync:
        started = sync.execute_flow("echo", {"bench": "async"})
        execution_id = started["execution_id"]
        sync.wait_for_execution(execution_id, 10, 0.01)
    full = f"{url}/api/v1/executions/{execution_id}"
    headers = {"Accept": "application/json", "User-Agent": "bench"}

    async def timed(call: Callable[[], Awaitable[object]], count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            await call()
        return (time.perf_counter() - started) / count

    async def run() -> Tuple[List[float], List[float]]:
        raw_times: List[float] = []
        sdk_times: List[float] = []
        async with aiohttp.ClientSession() as session, AsyncAISpine(
            base_url=url, max_retries=0
        ) as client:

            async def raw() -> object:
                async with session.get(full, headers=headers) as response:
                    response.raise_for_status()
                    return await response.json()

            async def sdk() -> object:
                return await client.get_execution(execution_id)

            await timed(raw, 200)
            await timed(sdk, 200)
            for _ in range(rounds):  # interleaved, so load changes hit both alike
                raw_times.append(await timed(raw, n))
                sdk_times.append(await timed(sdk, n))
        return raw_times, sdk_times

    raw_times, sdk_times = asyncio.run(run())
    raw_med, sdk_med = statistics.median(raw_times), statistics.median(sdk_times)
    raw_min, sdk_min = min(raw_times), min(sdk_times)
    print(f"5. async get_execution per call ({rounds} interleaved rounds of {n} calls)")
    for label, med, best in (
        ("raw aiohttp GET         ", raw_med, raw_min),
        ("AsyncAISpine            ", sdk_med, sdk_min),
    ):
        print(f"   {label} : median {med * 1e6:7.1f} us, best {best * 1e6:7.1f} us")
    print(
        f"   ratio                    : median {sdk_med / raw_med:7.3f}x,  "
        f"best {sdk_min / raw_min:7.3f}x   (target <= 1.10x)"
    )


def main() -> None:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    quick = args.quick
    proc, url = start_server()
    try:
        print(f"python {sys.version.split()[0]}, server {url}\n")
        bench_overhead(url, rounds=7 if quick else 21, n=200 if quick else 300)
        bench_imports(runs=5 if quick else 15)
        bench_round_trip(url, n=1000 if quick else 10000)
        bench_rps(url, seconds=2.0 if quick else 5.0)
        bench_async_overhead(url, rounds=7 if quick else 21, n=200 if quick else 300)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
