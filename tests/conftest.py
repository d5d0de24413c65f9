"""Shared pytest configuration: every test folder keeps its own fixtures, except the
PostgreSQL cluster, which tests of several folders share."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest

from tests import pgcluster
from tests.pgcluster import Cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster for the whole session (see ``tests/pgcluster.py``).

    Where the server binaries or psycopg are missing the tests that use it are skipped on a
    developer's machine; in CI (``CI=true``) they fail instead, so they always run there.
    """
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    try:
        import psycopg  # noqa: F401

        cluster = pgcluster.start()
    except (ImportError, pgcluster.ClusterError) as exc:
        if in_ci:
            pytest.fail(f"PostgreSQL tests cannot run in CI: {exc}")
        pytest.skip(f"no PostgreSQL for these tests: {exc}")
    try:
        yield cluster
    finally:
        pgcluster.stop(cluster)


@pytest.fixture
def pg_dsn(pg_cluster: Cluster) -> Iterator[str]:
    """The DSN of a fresh, empty database in the session's cluster (dropped afterwards)."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_cluster.dsn.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
