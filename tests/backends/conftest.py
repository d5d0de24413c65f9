"""The backends every contract test runs against, and more handles on the same storage."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from spark_core.graphs import InMemoryStateBackend, SQLiteStateBackend, StateBackend
from tests.pgcluster import Cluster

Opener = Callable[[], StateBackend]


def _opener(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Opener]:
    opened: List[StateBackend] = []
    memory = InMemoryStateBackend()
    schema = "t_" + uuid.uuid4().hex[:12]  # one PostgreSQL schema per test

    def opener() -> StateBackend:
        if kind == "memory":
            return memory
        if kind == "sqlite":
            backend: StateBackend = SQLiteStateBackend(tmp_path / "state.db")
        else:
            from spark_core.graphs.postgres import PostgresStateBackend

            cluster: Cluster = request.getfixturevalue("pg_cluster")
            backend = PostgresStateBackend(cluster.dsn, schema=schema)
        opened.append(backend)
        return backend

    yield opener
    for backend in opened:
        backend.close()
    if kind == "postgres" and opened:
        import psycopg

        cluster = request.getfixturevalue("pg_cluster")
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens handles on one storage, each new one as another process would (memory: the
    same object every time, it has no storage to share)."""
    yield from _opener(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def open_durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Like ``open_backend``, for the backends that store JSON (and so can refuse it)."""
    yield from _opener(request.param, request, tmp_path)


@pytest.fixture
def backend(open_backend: Opener) -> StateBackend:
    """One backend of each kind."""
    return open_backend()
