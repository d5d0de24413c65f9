"""PostgresStateBackend beyond the contract: claims across processes, leases, lost
connections, kill -9 and the errors a bad DSN gives."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from spark_core.errors import RunClaimedError, StateBackendError
from spark_core.graphs import Graph
from spark_core.graphs.postgres import PostgresStateBackend
from spark_core.nodes import ExecutionContext, Node
from spark_core.pgconnect import redact_dsn
from tests import pgcluster
from tests.engine.test_kill_resume import kill_and_resume_until_done
from tests.pgcluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


def _env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("COV_CORE_SOURCE", None)  # no coverage bookkeeping in subprocesses
    return env


def _stored_run(dsn: str, run_id: str, first: str) -> None:
    """Store a run as a killed process leaves it: running, ``first`` still pending."""
    backend = PostgresStateBackend(dsn)
    backend.save_run(
        {
            "run_id": run_id,
            "graph_id": first,
            "status": "running",
            "inputs": {},
            "frontier": [[first, {}]],
            "joins": {},
            "step": 0,
            "last_node": None,
            "error": None,
            "outputs": {},
        }
    )
    backend.close()


# ------------------------------------------------------------------ two resumers
@pytest.mark.slow
def test_two_processes_resuming_one_run_exactly_one_runs_it(
    pg_dsn: str, tmp_path: Path
) -> None:
    _stored_run(pg_dsn, "run-1", "gate")
    argv = [sys.executable, "-m", "tests.backends.resume_worker", pg_dsn, "run-1"]
    procs = [
        subprocess.Popen(
            argv + [str(tmp_path)], cwd=ROOT, env=_env(), stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        # The gate holds the winner inside the run until the loser has given up.
        deadline = time.monotonic() + 60
        while not any(p.poll() is not None for p in procs):
            assert time.monotonic() < deadline, "neither resumer gave up"
            time.sleep(0.01)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        assert loser.returncode == 3
        assert loser.stderr is not None
        message = loser.stderr.read().decode()
        assert "run 'run-1' is claimed by" in message
        assert "password" not in message.lower()
        (tmp_path / "go").touch()
        _, err = winner.communicate(timeout=60)
        assert winner.returncode == 0, err.decode()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len((tmp_path / "ran").read_text().splitlines()) == 1  # the gate ran once
    backend = PostgresStateBackend(pg_dsn)
    record = backend.load_run("run-1")
    backend.close()
    assert record is not None and record["status"] == "completed"
    assert record["outputs"]["done"] == {"done": True}


# ------------------------------------------------------------------------ leases
def test_a_claim_held_by_a_killed_process_expires(pg_dsn: str) -> None:
    script = (
        "import os, signal\n"
        "from spark_core.graphs.postgres import PostgresStateBackend\n"
        f"PostgresStateBackend({pg_dsn!r}, lease=5.0).claim_run('r1')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_env())
    assert done.returncode == -9
    backend = PostgresStateBackend(pg_dsn)
    with pytest.raises(RunClaimedError) as caught:
        backend.claim_run("r1")
    assert caught.value.expires_in <= 5.0
    deadline = time.monotonic() + 30
    while True:  # the dead holder's lease runs out: the run may be resumed here
        try:
            backend.claim_run("r1")
            break
        except RunClaimedError:
            assert time.monotonic() < deadline, "the dead process's claim never expired"
            time.sleep(0.1)
    backend.close()


def test_a_live_holder_keeps_its_claim_past_the_lease(pg_dsn: str) -> None:
    holder = PostgresStateBackend(pg_dsn, lease=3.0)
    other = PostgresStateBackend(pg_dsn)
    holder.claim_run("r1")
    time.sleep(7.0)  # more than two leases: only the renewals keep the claim alive
    with pytest.raises(RunClaimedError):
        other.claim_run("r1")
    holder.close()  # closing releases the claim
    other.claim_run("r1")
    other.close()


def test_a_holder_that_lost_its_claim_cannot_commit(pg_dsn: str) -> None:
    holder = PostgresStateBackend(pg_dsn)
    holder.save_run(
        {"run_id": "r1", "status": "running", "frontier": [], "joins": {}, "step": 0}
    )
    holder.claim_run("r1")
    import psycopg

    # As if its lease had expired and another process had claimed the run since.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE spark.spark_claims SET owner = 'elsewhere'")
    with pytest.raises(RunClaimedError, match="claimed by elsewhere"):
        holder.commit_step("r1", 1, "a", {"v": 1}, [], None, {"k": 1}, "a")
    record = holder.load_run("r1")
    assert record is not None and record["outputs"] == {} and record["step"] == 0
    assert holder.load_state() == {}
    holder.close()


# ---------------------------------------------------------------- kill -9, resume
@pytest.mark.slow
def test_kill_dash_nine_at_random_points_then_resume_on_postgres(
    pg_dsn: str, tmp_path: Path
) -> None:
    kill_and_resume_until_done(pg_dsn, tmp_path / "side.log", seed=7)


# ---------------------------------------------------------------- lost connection
class Counted(Node):
    """Appends its id to ``log``; the node named ``crash_db`` stops the server first."""

    def __init__(self, name: str, log: List[str], cluster: Cluster) -> None:
        super().__init__(name=name)
        self.log, self.cluster = log, cluster

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        self.log.append(self.id)
        if self.id == "n2" and self.log.count("n2") == 1:
            pgcluster.stop(self.cluster, remove=False)
        return {"n": context.inputs.content.get("n", 0) + 1}


@pytest.mark.slow
def test_a_lost_connection_fails_the_step_and_the_run_resumes_later() -> None:
    cluster = pgcluster.start()  # its own cluster: this test stops it mid-run
    try:
        log: List[str] = []
        nodes = [Counted(f"n{i}", log, cluster) for i in range(5)]
        for left, right in zip(nodes, nodes[1:]):
            left >> right
        backend = PostgresStateBackend(cluster.dsn, connect_timeout=2)
        graph = Graph(start=nodes[0], state_backend=backend)
        with pytest.raises(StateBackendError) as caught:
            graph.run_sync({"n": 0}, run_id="r1")
        assert cluster.password not in str(caught.value)
        assert "***" in str(caught.value)
        pgcluster.restart(cluster)
        result = graph.resume_sync("r1")
        assert result.status == "completed" and result.content == {"n": 5}
        # n0 and n1 were committed before the server went away: they did not run again;
        # n2's step never committed, so it ran again.
        assert log == ["n0", "n1", "n2", "n2", "n3", "n4"]
        backend.close()
    finally:
        pgcluster.stop(cluster)


# ------------------------------------------------------------------------ errors
def test_an_unreachable_server_is_one_clear_error(pg_cluster: Cluster) -> None:
    dsn = f"postgresql://postgres:s3cret-pw@127.0.0.1:{pgcluster.free_port()}/postgres"
    with pytest.raises(StateBackendError) as caught:
        PostgresStateBackend(dsn, connect_timeout=2)
    text = str(caught.value)
    assert "postgresql://postgres:***@127.0.0.1" in text and "cannot connect" in text
    assert "s3cret-pw" not in text and caught.value.__cause__ is None


def test_a_wrong_password_is_one_clear_error(pg_cluster: Cluster) -> None:
    dsn = f"postgresql://postgres:not-the-password@127.0.0.1:{pg_cluster.port}/postgres"
    with pytest.raises(StateBackendError, match="password authentication failed") as e:
        PostgresStateBackend(dsn)
    assert "not-the-password" not in str(e.value) and "postgres:***@" in str(e.value)


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(StateBackendError, match=r"ai-spine-sdk\[postgres\]") as caught:
        PostgresStateBackend("postgresql://u:pw-123@127.0.0.1:1/db")
    assert "postgresql://u:***@127.0.0.1:1/db" in str(caught.value)
    assert "pw-123" not in str(caught.value)


def test_bad_options_are_refused_before_connecting() -> None:
    with pytest.raises(StateBackendError, match="schema"):
        PostgresStateBackend("postgresql://u:pw@h/db", schema="x; DROP TABLE y")
    with pytest.raises(StateBackendError, match="lease"):
        PostgresStateBackend("postgresql://u:pw@h/db", lease=0)


def test_the_repr_hides_the_password(pg_cluster: Cluster) -> None:
    backend = PostgresStateBackend(pg_cluster.dsn, schema="repr_check")
    assert pg_cluster.password not in repr(backend) and "***" in repr(backend)
    backend.close()


@pytest.mark.parametrize(
    "dsn, shown",
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        (
            "postgresql://h/db?password=pw&sslmode=on",
            "postgresql://h/db?password=***&sslmode=on",
        ),
        ("host=h password=pw user=u", "host=h password=*** user=u"),
        ("host=h password = 'p w' user=u", "host=h password = *** user=u"),
    ],
)
def test_redact_dsn_hides_every_form_of_password(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_a_write_the_server_refuses_stores_nothing_and_the_backend_goes_on(
    pg_dsn: str,
) -> None:
    backend = PostgresStateBackend(pg_dsn)
    backend.save_run(
        {"run_id": "r1", "status": "running", "frontier": [], "joins": {}, "step": 0}
    )
    backend.claim_run("r1")
    bad_key = "nul\x00key"  # PostgreSQL text cannot hold a NUL character
    with pytest.raises(StateBackendError):
        backend.save_state_keys({"ok": 1, bad_key: 2})
    with pytest.raises(StateBackendError):
        backend.commit_step(
            "r1", 1, "a", {"v": 1}, [], None, {"ok": 1, bad_key: 2}, "a"
        )
    assert backend.load_state() == {}
    record = backend.load_run("r1")
    assert record is not None and record["outputs"] == {} and record["step"] == 0
    backend.commit_step("r1", 1, "a", {"v": 1}, [], None, {"ok": 1}, "a")
    assert backend.load_state() == {"ok": 1}
    backend.close()
