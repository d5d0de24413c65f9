"""The durable chain on PostgreSQL: spark_core against LangGraph's PostgreSQL checkpointer.

Run:  pip install -e ".[postgres]" -r bench/requirements.txt && python bench/postgres.py

By default it starts a throwaway PostgreSQL cluster (``tests/pgcluster.py``: needs the server
binaries; as root it runs the server as the ``postgres`` user) and stops it at the end;
``--dsn`` uses a server of yours instead. On one server, in one run, it measures the linear
chain of N nodes committed after every step (microseconds per step, median of several runs):

* spark_core's ``PostgresStateBackend`` (one statement per step, its run claim renewed in
  it);
* LangGraph's ``PostgresSaver`` (``langgraph-checkpoint-postgres``), a checkpoint per step;
* for reference, both on SQLite (a fresh file per run), as ``bench/engine.py`` measures them.

The PostgreSQL pair runs twice: with the server's default ``synchronous_commit=on`` (every
commit waits for the WAL to reach the disk, so the disk's flush time weighs on both), and
with ``synchronous_commit=off`` for both (a commit survives the client's crash but not the
server's, as SQLite's ``synchronous=NORMAL`` survives the process's but not the machine's):
what the two stores themselves cost per step.

Both PostgreSQL stores get their tables created before timing starts, and each run uses a new
run id (spark_core) or thread id (LangGraph). This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import (  # noqa: E402
    _fmt,
    _lg_chain,
    _median_of,
    _ratio,
    _spark_chain,
    _timed,
    _try,
    langgraph_chain_sqlite,
    spark_chain_sqlite,
)
from tests import pgcluster  # noqa: E402

_NO_SYNC = "options=-c%20synchronous_commit%3Doff"  # a libpq option, in URL form


def spark_chain_postgres(n: int, runs: int, dsn: str) -> float:
    """spark_core chain with a PostgreSQL commit per step: µs per step."""
    from spark_core.graphs.postgres import PostgresStateBackend

    backend = PostgresStateBackend(dsn, schema="bench_spark")
    graph = _spark_chain(n, backend=backend)

    def once() -> float:
        run_id = uuid.uuid4().hex
        return _timed(lambda: graph.run(run_id=run_id))

    once()  # warm-up
    result = _median_of(runs, once) / n * 1e6
    backend.close()
    return result


def langgraph_chain_postgres(n: int, runs: int, dsn: str) -> float:
    """LangGraph chain with ``PostgresSaver``, a checkpoint per step: µs per step."""
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    # The connection settings LangGraph's documentation asks for.
    with psycopg.connect(
        dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        graph = _lg_chain(n, False).compile(checkpointer=saver)

        def once() -> float:
            config = {
                "recursion_limit": n + 10,
                "configurable": {"thread_id": uuid.uuid4().hex},
            }
            return _timed(lambda: asyncio.to_thread(graph.invoke, {"n": 0}, config))

        once()  # warm-up
        return _median_of(runs, once) / n * 1e6


def main(argv: Optional[List[str]] = None) -> int:
    """Measure and print a markdown table.

    Args:
        argv: Command-line arguments.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dsn", help="use this server instead of a throwaway cluster")
    parser.add_argument("--quick", action="store_true", help="50 nodes, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.runs = 50, 1
    n, runs = args.nodes, args.runs
    cluster = None
    dsn = args.dsn
    if dsn is None:
        cluster = pgcluster.start()
        dsn = cluster.dsn
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            relaxed = dsn + ("&" if "?" in dsn else "?") + _NO_SYNC
            rows: List[Any] = [
                (
                    f"linear chain, PostgreSQL commit every step, per step (N={n})",
                    _try(lambda: langgraph_chain_postgres(n, runs, dsn)),
                    spark_chain_postgres(n, runs, dsn),
                ),
                (
                    "the same, both with synchronous_commit=off",
                    _try(lambda: langgraph_chain_postgres(n, runs, relaxed)),
                    spark_chain_postgres(n, runs, relaxed),
                ),
                (
                    f"linear chain, SQLite commit every step, per step (N={n})",
                    _try(lambda: langgraph_chain_sqlite(n, runs, tmp)),
                    spark_chain_sqlite(n, runs, tmp),
                ),
            ]
    finally:
        if cluster is not None:
            pgcluster.stop(cluster)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"median of {runs} runs; PostgreSQL on 127.0.0.1 "
        f"({'throwaway cluster, default settings' if cluster else 'given server'})\n"
    )
    print("| work | LangGraph | spark_core | LangGraph / spark |")
    print("|---|---|---|---|")
    for name, lg, ours in rows:
        print(
            f"| {name} | {_fmt(lg, 'µs')} | {_fmt(ours, 'µs')} | {_ratio(lg, ours)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
