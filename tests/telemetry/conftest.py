"""Fixtures for telemetry tests: independent managers that are always closed."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from spark_core.telemetry import TelemetryConfig, TelemetryManager


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


@pytest.fixture(params=["memory", "sqlite"])
def manager(
    request: pytest.FixtureRequest,
    memory_manager: TelemetryManager,
    sqlite_manager: TelemetryManager,
) -> TelemetryManager:
    return memory_manager if request.param == "memory" else sqlite_manager
