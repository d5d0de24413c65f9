"""LocalSpine's execution journal on PostgreSQL: several LocalSpines (and processes) share it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from ai_spine import AISpine
from ai_spine.exceptions import AISpineError, ExecutionError, ValidationError
from ai_spine.local import LocalSpine
from ai_spine.local.journal import JournalError, SQLiteJournal
from ai_spine.local.pg_journal import PostgresJournal
from tests.local.flows import Hooks, make_flows
from tests.local.serve_process import ServeProcess

pytestmark = pytest.mark.timeout(120)


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_two_spines_share_executions_and_cancel_reaches_the_runner(
    pg_dsn: str,
) -> None:
    hooks = Hooks()
    first = LocalSpine(make_flows(hooks), db=pg_dsn)
    second = LocalSpine(make_flows(Hooks()), db=pg_dsn)
    try:
        done = first.execute_flow("echo", {"n": 1})["execution_id"]
        first.wait_for_execution(done, timeout=20)
        blocked = first.execute_flow("block", {})["execution_id"]
        assert hooks.started.wait(20)
        # The second lists and reads what the first runs and ran.
        listed = second.list_executions()
        assert [e["execution_id"] for e in listed] == [blocked, done]
        assert second.get_execution(done)["output_data"] == {
            "echo": {"n": 1}
        }  # keyed by the exit node
        assert second.get_execution(blocked)["status"] == "running"
        # A cancel through the second stops the run in the first.
        assert second.cancel_execution(blocked)["status"] == "cancelled"
        assert hooks.cancelled.wait(20)  # the run's task in the first was cancelled
        _until(
            lambda: first.get_metrics()["active_executions"] == 0,
            "the first spine to stop the run",
        )
        with pytest.raises(ExecutionError):
            first.wait_for_execution(blocked, timeout=20)
        assert first.get_execution(blocked)["status"] == "cancelled"
        assert second.get_execution(blocked)["status"] == "cancelled"
        # A wait through the second reads the journal until the first finishes the run.
        later = first.execute_flow("block", {})["execution_id"]
        waited: Dict[str, Any] = {}
        waiter = threading.Thread(
            target=lambda: waited.update(
                second.wait_for_execution(later, timeout=20, interval=0.05)
            )
        )
        waiter.start()
        _until(lambda: second.get_execution(later)["status"] == "running", "block")
        hooks.release.set()
        waiter.join(30)
        assert waited["output_data"] == {"block": {"released": True}}
        assert "***" in repr(first) and pg_dsn not in repr(first)
    finally:
        hooks.release.set()
        first.close(timeout=2)
        second.close(timeout=2)


def test_an_idempotency_key_used_in_two_spines_at_once_starts_one_execution(
    pg_dsn: str,
) -> None:
    spines = [LocalSpine(make_flows(Hooks()), db=pg_dsn) for _ in range(2)]
    try:
        for round_no in range(5):
            key = f"key-{round_no}"
            answers: List[str] = []
            gate = threading.Barrier(2)

            def run(spine: LocalSpine) -> None:
                gate.wait()
                started = spine.execute_flow("echo", {"r": 1}, idempotency_key=key)
                answers.append(started["execution_id"])

            threads = [threading.Thread(target=run, args=(s,)) for s in spines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)
            assert len(answers) == 2 and answers[0] == answers[1]
        assert len(spines[0].list_executions()) == 5
        with pytest.raises(ValidationError, match="already used"):
            spines[1].execute_flow("echo", {"other": 1}, idempotency_key="key-0")
    finally:
        for spine in spines:
            spine.close(timeout=2)


def test_a_dead_owners_unfinished_executions_are_taken_over_once(
    pg_dsn: str,
) -> None:
    live = LocalSpine(
        make_flows(Hooks()), journal=PostgresJournal(pg_dsn, takeover_every=0.2)
    )
    also = LocalSpine(
        make_flows(Hooks()), journal=PostgresJournal(pg_dsn, takeover_every=0.2)
    )
    try:
        # A process that dies with a run in flight: its row says running, its lock is free.
        code = (
            "import os, sys\n"
            "from ai_spine.local import LocalSpine\n"
            "from tests.local.flows import Hooks, make_flows\n"
            "spine = LocalSpine(make_flows(Hooks()), db=sys.argv[1])\n"
            "print(spine.execute_flow('block', {})['execution_id'], flush=True)\n"
            "import time; time.sleep(1.0)\n"
            "os._exit(0)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, pg_dsn],
            capture_output=True,
            text=True,
            timeout=60,
        )
        orphan = out.stdout.strip()
        # The live spines notice the dead owner; one of them fails the run (not durable).
        # Both wait: the one that took it over sees its own record before the journal row.
        _until(
            lambda: all(
                s.get_execution(orphan)["status"] == "failed" for s in (live, also)
            ),
            "the orphan taken over",
        )
        got = also.get_execution(orphan)
        assert "interrupted" in (got["error_message"] or "")
        owners = [s for s in (live, also) if s.get_metrics()["total_executions"]]
        assert len(owners) == 1  # exactly one took it over
        third = LocalSpine(make_flows(Hooks()), db=pg_dsn)
        third.close(timeout=2)
        assert live.get_execution(orphan)["status"] == "failed"  # nothing more happened
    finally:
        live.close(timeout=2)
        also.close(timeout=2)


def test_a_live_owners_running_execution_is_not_taken_over(pg_dsn: str) -> None:
    hooks = Hooks()
    first = LocalSpine(make_flows(hooks), db=pg_dsn)
    try:
        blocked = first.execute_flow("block", {})["execution_id"]
        assert hooks.started.wait(20)
        second = LocalSpine(make_flows(Hooks()), db=pg_dsn)
        second.close(timeout=2)
        assert first.get_execution(blocked)["status"] == "running"
        hooks.release.set()
        assert first.wait_for_execution(blocked, timeout=20)["status"] == "completed"
    finally:
        hooks.release.set()
        first.close(timeout=2)


def test_unreachable_database_is_one_clear_error_without_the_password(
    pg_dsn: str,
) -> None:
    from tests.pgcluster import free_port

    dsn = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/nope"
    with pytest.raises(AISpineError) as caught:
        LocalSpine({}, db=dsn)
    text = str(caught.value)
    assert "cannot open execution store postgresql://postgres:***@127.0.0.1" in text
    assert "s3cret-pw" not in text
    bad_password = "postgresql://postgres:wrong-pw@" + pg_dsn.split("@", 1)[1]
    with pytest.raises(JournalError) as refused:
        PostgresJournal(bad_password)
    assert "wrong-pw" not in str(refused.value)
    assert "postgres:***@" in str(refused.value)


def test_serve_cli_bad_dsn_is_one_line_and_exit_2() -> None:
    from tests.pgcluster import free_port

    dsn = f"postgresql://u:hunter2@127.0.0.1:{free_port()}/db"
    proc = subprocess.run(
        [sys.executable, "-m", "ai_spine.cli", "serve", "--db", dsn, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ai-spine serve: error: cannot open execution store")
    assert "u:***@127.0.0.1" in lines[0]
    assert "hunter2" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_two_serve_processes_on_one_journal(pg_dsn: str) -> None:
    args = ["--flows", "tests.local.flows:served_flows", "--db", pg_dsn, "--grace", "1"]
    one, two = ServeProcess(args), ServeProcess(args)
    try:
        a, b = AISpine(base_url=one.url), AISpine(base_url=two.url)
        done = a.execute_flow("echo", {"hello": "pg"})["execution_id"]
        _until(lambda: b.get_execution(done)["status"] == "completed", "echo")
        assert b.get_execution(done)["output_data"] == {"echo": {"hello": "pg"}}
        slow = a.execute_flow("sleep", {"seconds": 60})["execution_id"]
        _until(lambda: b.get_execution(slow)["status"] == "running", "sleep running")
        assert a.get_metrics()["active_executions"] == 1
        listed: List[Dict[str, Any]] = b.list_executions()
        assert [e["execution_id"] for e in listed] == [slow, done]
        assert b.cancel_execution(slow)["status"] == "cancelled"
        # The process running it stopped it (its own count of active runs drops).
        _until(lambda: a.get_metrics()["active_executions"] == 0, "cancel in A")
        assert a.get_execution(slow)["status"] == "cancelled"
        # One key through both servers: one execution.
        first = a.execute_flow("echo", {"k": 1}, idempotency_key="same-key")
        again = b.execute_flow("echo", {"k": 1}, idempotency_key="same-key")
        assert first["execution_id"] == again["execution_id"]
        assert len(b.list_executions()) == 3
        # A server killed mid-run: the other takes its execution over (fails it: the
        # sleep flow is not durable) instead of listing it as running for ever.
        lost = a.execute_flow("sleep", {"seconds": 60})["execution_id"]
        _until(lambda: b.get_execution(lost)["status"] == "running", "sleep running")
        one.proc.kill()
        assert one.stop()[0] == -signal.SIGKILL
        _until(
            lambda: b.get_execution(lost)["status"] == "failed", "takeover", timeout=40
        )
        assert "interrupted" in b.get_execution(lost)["error_message"]
    finally:
        one.stop()
        assert two.stop()[0] == 0


def test_a_cancel_sent_while_the_runner_was_not_listening_is_still_seen(
    pg_dsn: str,
) -> None:
    import psycopg

    hooks = Hooks()
    first = LocalSpine(make_flows(hooks), db=pg_dsn)
    second = LocalSpine(make_flows(Hooks()), db=pg_dsn)
    try:
        blocked = first.execute_flow("block", {})["execution_id"]
        assert hooks.started.wait(20)
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            ).fetchall()
        assert len(cut) == 2  # both spines' listening connections
        second.cancel_execution(blocked)  # its NOTIFY finds nobody listening
        assert hooks.cancelled.wait(30)  # seen by the rescan after reconnecting
        assert first.get_execution(blocked)["status"] == "cancelled"
    finally:
        hooks.release.set()
        first.close(timeout=2)
        second.close(timeout=2)


def test_journal_refuses_bad_schema_and_calls_after_close(pg_dsn: str) -> None:
    with pytest.raises(JournalError, match="schema"):
        PostgresJournal(pg_dsn, schema="Bad-Name")
    journal = PostgresJournal(pg_dsn, schema="other_journal")
    assert repr(journal).startswith("PostgresJournal('postgresql://postgres:***@")
    journal.save_key("k", "e", "f")
    journal.save_key("k", "e2", "f2")  # the first one stays
    assert journal.find_key("k") == ("e", "f")
    assert journal.get("e") is None
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.get("e")
    with pytest.raises(JournalError, match="closed"):
        journal.close()


class RacingJournal(SQLiteJournal):
    """A journal whose key lookups miss, as when another process claims a key meanwhile."""

    def find_key(self, key: str) -> Optional[Tuple[str, str]]:
        return None


def test_a_key_claimed_by_another_process_first_answers_with_its_execution(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "shared.sqlite")
    first = LocalSpine(make_flows(Hooks()), journal=RacingJournal(path))
    second = LocalSpine(make_flows(Hooks()), journal=RacingJournal(path))
    try:
        started = first.execute_flow("echo", {"a": 1}, idempotency_key="k")
        again = second.execute_flow("echo", {"a": 1}, idempotency_key="k")
        assert again["execution_id"] == started["execution_id"]
        with pytest.raises(ValidationError, match="already used"):
            second.execute_flow("echo", {"a": 2}, idempotency_key="k")
        first.wait_for_execution(started["execution_id"], timeout=20)
        reader = SQLiteJournal(path)
        assert reader.page(10, 0, None, None)[1] == 1  # one execution in all
        reader.close()
    finally:
        first.close(timeout=2)
        second.close(timeout=2)
