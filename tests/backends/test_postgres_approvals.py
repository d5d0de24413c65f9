"""Approvals on PostgreSQL: a run pauses in one process, an operator resolves it with
``spark-spec`` from another, a third process resumes it; two operators race."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any, List

import pytest

from spark_core.cli import main as spark_spec
from spark_core.governance import ApprovalStore
from tests.governance import fs_app
from tests.governance.test_graph_governance import run_app
from tests.pgcluster import Cluster


def _lines(path: Path) -> List[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_approval_across_processes_with_the_cli_on_postgres(
    pg_dsn: str, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "out.txt"
    first = run_app(pg_dsn, str(out), "run")
    assert first["status"] == "paused" and _lines(out) == []

    assert spark_spec(["approval-list", "--state", pg_dsn, "--json"]) == 0
    [pending] = json.loads(capsys.readouterr().out)
    assert pending["id"] == first["request_id"] and pending["run_id"] == first["run_id"]
    argv = ["approval-resolve", pending["id"], "--state", pg_dsn]
    assert spark_spec(argv + ["--status", "approved", "--reviewer", "ops"]) == 0
    assert "approved by ops" in capsys.readouterr().out

    second = run_app(pg_dsn, str(out), "resume", first["run_id"])
    assert second["status"] == "completed" and _lines(out) == ["approved line"]
    third = run_app(pg_dsn, str(out), "resume", first["run_id"])  # runs it never again
    assert third["status"] == "completed" and _lines(out) == ["approved line"]
    [used] = ApprovalStore.open(pg_dsn).list_sync(status="approved")
    assert used.consumed_at is not None and used.reviewer == "ops"


@pytest.mark.slow
def test_two_operators_racing_on_postgres_resolve_once(
    pg_dsn: str, tmp_path: Path
) -> None:
    first = run_app(pg_dsn, str(tmp_path / "out.txt"), "run")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=fs_app.resolve_worker,
            args=(pg_dsn, first["request_id"], name, barrier, results),
        )
        for name in ("ana", "bo")
    ]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=60)[1] for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert outcomes == ["already", "resolved"]


def test_the_cli_names_a_bad_dsn_without_its_password(
    pg_cluster: Cluster, capsys: Any
) -> None:
    dsn = f"postgresql://postgres:wrong-pw@127.0.0.1:{pg_cluster.port}/postgres"
    assert spark_spec(["approval-list", "--state", dsn]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "postgres:***@127.0.0.1" in err and "wrong-pw" not in err
    assert "password authentication failed" in err


def test_the_cli_refuses_a_backend_that_does_not_match_the_state(capsys: Any) -> None:
    argv = ["approval-list", "--state", "postgresql://u:pw@h/db", "--backend", "sqlite"]
    assert spark_spec(argv) == 2
    err = capsys.readouterr().err
    assert "--backend sqlite does not match --state" in err and "pw" not in err
