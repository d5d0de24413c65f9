"""Fixtures for telemetry tests: independent managers that are always closed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from spark_core.telemetry import TelemetryConfig, TelemetryManager
from tests.pgcluster import Cluster


@pytest.fixture
def memory_manager() -> Iterator[TelemetryManager]:
    manager = TelemetryManager(TelemetryConfig(backend="memory", buffer_size=10))
    yield manager
    manager.close()


@pytest.fixture
def sqlite_manager(tmp_path: Path) -> Iterator[TelemetryManager]:
    config = TelemetryConfig(
        backend="sqlite",
        backend_config={"path": str(tmp_path / "telemetry.db")},
        buffer_size=10,
    )
    manager = TelemetryManager(config)
    yield manager
    manager.close()


@pytest.fixture
def postgresql_manager(pg_cluster: Cluster) -> Iterator[TelemetryManager]:
    schema = "tel_" + uuid.uuid4().hex[:12]  # one schema per test
    config = TelemetryConfig(
        backend="postgresql",
        backend_config={"dsn": pg_cluster.dsn, "schema": schema},
        buffer_size=10,
    )
    manager = TelemetryManager(config)
    yield manager
    manager.close()
    import psycopg

    with psycopg.connect(pg_cluster.dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def manager(request: pytest.FixtureRequest) -> TelemetryManager:
    """A manager over each backend that answers queries from what it stored."""
    found: TelemetryManager = request.getfixturevalue(f"{request.param}_manager")
    return found
