"""kill -9 at random moments, resume, and check that no committed node ran twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

from tests.engine.kill_worker import BRANCHES, CHAIN, TAIL, node_ids, open_backend

ROOT = Path(__file__).resolve().parents[2]


def _spawn(db: str, side: Path) -> "subprocess.Popen[bytes]":
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("COV_CORE_SOURCE", None)  # no coverage bookkeeping in the victim
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engine.kill_worker", db, str(side), "run-1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _lines(side: Path) -> List[str]:
    return side.read_text().splitlines() if side.exists() else []


def _load(db: str) -> Optional[Dict[str, Any]]:
    if not db.startswith("postgresql://") and not os.path.exists(db):
        return None
    backend = open_backend(db)
    try:
        return backend.load_run("run-1")
    finally:
        backend.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_dash_nine_at_random_points_then_resume(tmp_path: Path, seed: int) -> None:
    kill_and_resume_until_done(str(tmp_path / "runs.db"), tmp_path / "side.log", seed)


def kill_and_resume_until_done(db: str, side: Path, seed: int) -> None:
    """Start the worker on ``db`` (a SQLite file or a PostgreSQL DSN), kill it at random
    points until a run completes, and check that nothing committed ran twice."""
    rng = random.Random(seed)
    checks: List[Tuple[Set[str], int]] = (
        []
    )  # (committed nodes, side-file lines) per kill
    partial_kills = 0
    for _ in range(60):
        # Kill after a random amount of progress (nodes started) plus a random delay, so
        # kills land anywhere: inside a node, between steps, inside a commit.
        target = len(_lines(side)) + rng.randint(1, 6)
        proc = _spawn(db, side)
        deadline = time.monotonic() + 30
        while (
            len(_lines(side)) < target
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            record = _load(db)
            committed = set(record["outputs"]) if record else set()
            if 0 < len(committed) < len(node_ids()):
                partial_kills += 1
            checks.append((committed, len(_lines(side))))
            continue
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()
        break
    else:
        pytest.fail("the run never completed")

    lines = _lines(side)
    record = _load(db)
    assert record is not None and record["status"] == "completed"
    assert set(record["outputs"]) == set(node_ids())
    expected_tail = [f"c{i}" for i in range(CHAIN)] + [f"b{i}" for i in range(BRANCHES)]
    assert record["outputs"]["merge"]["path"] == expected_tail
    assert record["outputs"][f"t{TAIL - 1}"]["path"][-TAIL:] == [
        f"t{i}" for i in range(TAIL)
    ]
    # The core property: after a kill, nothing that was committed ran again.
    for committed, offset in checks:
        rerun = committed.intersection(lines[offset:])
        assert not rerun, f"committed nodes ran again after a kill: {sorted(rerun)}"
    # Every node ran at least once; only uncommitted ones may have run more than once.
    assert set(lines) == set(node_ids()) - {"merge"}
    # The state counter was committed with each step, so it counts committed executions.
    backend = open_backend(db)
    state = backend.load_state()
    backend.close()
    assert state["executed"] == len(node_ids()) - 1
    # Each node counted its run before sleeping; only the run that committed may remain.
    counts = {nid: state.get(f"runs:{nid}") for nid in node_ids() if nid != "merge"}
    assert counts == {
        nid: 1 for nid in counts
    }, "a node's write outlived its killed run"
    assert partial_kills >= 1, "no kill landed in the middle of the run"
