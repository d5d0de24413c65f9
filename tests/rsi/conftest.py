"""Fixtures for the RSI tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest

from spark_core.agents import replace_models
from spark_core.kit.loader import SpecLoader
from spark_core.rsi import ExperienceDatabase
from spark_core.spec import MissionSpec
from tests.rsi import sample

ALLOWED = ["spark_core", "tests.rsi"]


@pytest.fixture
def experience_db(tmp_path: Path) -> Iterator[ExperienceDatabase]:
    """An initialized experience database in a temporary folder."""
    db = ExperienceDatabase(str(tmp_path / "experience.db"))
    db.initialize_sync()
    yield db
    db.close()


async def fill(
    db: ExperienceDatabase,
    count: int = 20,
    version: str = "1.0",
    mission: Optional[MissionSpec] = None,
) -> None:
    """Run the sample mission (or ``mission``) ``count`` times, recording into ``db``."""
    mission = mission or sample.mission()
    model = sample.polite_model()

    async def one(item: Dict[str, Any]) -> None:
        observer = db.observer(mission.mission_id, version, scorer=sample.score)
        graph = SpecLoader(ALLOWED).load_mission(mission, observers=[observer])
        replace_models(graph, lambda node_id, old: model)
        try:
            await graph.run(item)
        except Exception:  # failed runs are recorded; that is the point
            pass

    # One graph per run (a graph runs one run at a time), all at once.
    await asyncio.gather(*(one(item) for item in sample.inputs(count)))


@pytest.fixture
def filled_db(experience_db: ExperienceDatabase) -> ExperienceDatabase:
    """The experience database after 20 real runs of the sample mission."""
    asyncio.run(fill(experience_db))
    return experience_db
