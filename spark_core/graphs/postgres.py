"""``PostgresStateBackend``: graph state and run records in PostgreSQL, shared by processes.

The tables are SQLite's (``spark_state``, ``spark_runs``, ``spark_outputs``) plus
``spark_claims``, in a schema of their own (``spark`` by default), with values stored as
JSON text so they come back exactly as written. Each completed step is committed by one
statement, so in one transaction and one round trip (the node's output, the new frontier,
its state writes, the claim's renewal): a step either committed whole or left nothing.
Commits follow the server's ``synchronous_commit``; a DSN may relax it for its sessions
(``?options=-c%20synchronous_commit%3Doff``: a commit then survives this process's crash but
not the server's, as SQLite's ``synchronous=NORMAL`` survives the process's, not the
machine's).

Run claims make "exactly one process runs a run" hold across machines: a claim is a row of
``spark_claims`` taken with ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` (PostgreSQL locks
the conflicting row, so two claimers cannot both win) and carries a lease. The holder renews
the lease with every committed step and from a background thread while a node runs long; a
holder that dies stops renewing, its lease expires and another process may resume the run.
A step committed by a holder that lost its claim is refused (``RunClaimedError``), so a
paused process that wakes up after its lease expired cannot overwrite the new holder's work.

psycopg 3 is imported lazily (extra ``ai-spine-sdk[postgres]``). A lost connection fails the
call that saw it with ``StateBackendError``; the next call reconnects.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple, cast

from spark_core.errors import RunClaimedError, StateBackendError
from spark_core.graphs.backends import (
    DELETED,
    RunRecord,
    RunSummary,
    StateBackend,
    _dumps,
)
from spark_core.pgconnect import connect, describe_error, import_psycopg, redact_dsn

__all__ = ["PostgresStateBackend"]

logger = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
Statement = Tuple[str, Any]
# The spark_runs columns a run record is read from, in SELECT order.
_RUN_FIELDS = (
    "graph_id",
    "status",
    "inputs",
    "frontier",
    "joins",
    "step",
    "last_node",
    "error",
)
_CLAIM_LOST = "SPK01"  # the SQLSTATE spark_renew_claim raises


def _tables(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.spark_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.spark_runs (
    run_id TEXT PRIMARY KEY, graph_id TEXT, status TEXT NOT NULL, inputs TEXT,
    frontier TEXT NOT NULL, joins TEXT NOT NULL, step INTEGER NOT NULL, last_node TEXT,
    error TEXT, seq BIGSERIAL, created TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.spark_outputs (
    run_id TEXT NOT NULL, node_id TEXT NOT NULL, step INTEGER NOT NULL, output TEXT,
    PRIMARY KEY (run_id, node_id)
);
CREATE TABLE IF NOT EXISTS {schema}.spark_claims (
    run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires TIMESTAMPTZ NOT NULL
);
-- Renews a claim inside a step's transaction, or aborts it when the claim is not the
-- caller's any more: the step's statements and this check travel in one round trip.
CREATE OR REPLACE FUNCTION {schema}.spark_renew_claim(p_run TEXT, p_owner TEXT, p_secs FLOAT8)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {schema}.spark_claims SET expires = now() + make_interval(secs => p_secs)
    WHERE run_id = p_run AND owner = p_owner;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run claim lost' USING ERRCODE = '{_CLAIM_LOST}';
    END IF;
END $$;
"""


class PostgresStateBackend(StateBackend):
    """Keeps state, run records and run claims in a PostgreSQL database.

    Several processes (on several machines) may use the same database and schema: they see
    one state and one list of runs, and a run claim lets exactly one of them run a given run
    at a time (``graph.resume(run_id)`` in a second process raises
    :class:`~spark_core.errors.RunClaimedError` while the first runs it).

    Attributes:
        durable: Always True: every step is committed.
        owner: This backend's identity in run claims (host, pid and a random tag unless
            given): claims taken by the same owner may be taken again at once.
    """

    durable = True

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "spark",
        lease: float = 30.0,
        owner: Optional[str] = None,
        connect_timeout: float = 10.0,
    ) -> None:
        """Connect and create the tables if they do not exist.

        Args:
            dsn: A libpq connection string, e.g. ``postgresql://user:pw@host/db``.
            schema: The PostgreSQL schema holding the tables (one per independent store).
            lease: Seconds a run claim lasts without being renewed; the holder renews it
                every step and every ``lease / 3`` seconds while it runs, so a claim
                outlives its holder by at most this long.
            owner: The claim owner's name (default: host, pid and a random tag). A
                restarted worker that passes its previous name may resume its runs at
                once instead of waiting for the lease to expire.
            connect_timeout: Seconds to wait for the server when (re)connecting.

        Raises:
            StateBackendError: psycopg is not installed, the server cannot be reached or
                refuses the login, or an option is invalid (the password is never shown).
        """
        if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
            raise StateBackendError(
                f"schema must be a lower-case SQL identifier, got {schema!r}"
            )
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or lease <= 0:
            raise StateBackendError(
                f"lease must be a positive number of seconds, got {lease!r}"
            )
        self._dsn = dsn
        self.schema = schema
        self.lease = float(lease)
        self.owner = owner or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._connect_timeout = connect_timeout
        self._psycopg = import_psycopg(
            StateBackendError, f"PostgreSQL state backend {redact_dsn(dsn)}"
        )
        self._lock = threading.RLock()
        self._conn: Any = None
        self._claims: Set[str] = set()
        self._renewer: Optional[threading.Thread] = None
        self._closing = threading.Event()
        s = schema
        self._sql = {
            "upsert_state": f"INSERT INTO {s}.spark_state (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            "delete_state": f"DELETE FROM {s}.spark_state WHERE key = %s",
            "output": f"INSERT INTO {s}.spark_outputs (run_id, node_id, step, output) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (run_id, node_id) DO UPDATE "
            "SET step = excluded.step, output = excluded.output",
            "claim": f"INSERT INTO {s}.spark_claims AS c (run_id, owner, expires) "
            "VALUES (%s, %s, now() + make_interval(secs => %s)) "
            "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, "
            "expires = excluded.expires "
            "WHERE c.owner = excluded.owner OR c.expires < now() RETURNING owner",
        }
        self._execute_script(_tables(schema))

    def __repr__(self) -> str:
        return (
            f"PostgresStateBackend({redact_dsn(self._dsn)!r}, schema={self.schema!r})"
        )

    # ------------------------------------------------------------ connection
    def _error(self, exc: BaseException) -> StateBackendError:
        return StateBackendError(
            f"PostgreSQL state backend {redact_dsn(self._dsn)}: "
            f"{describe_error(self._dsn, exc)}"
        )

    def _connection(self) -> Any:
        conn = self._conn
        if conn is None or conn.closed:
            self._conn = conn = connect(
                self._dsn,
                StateBackendError,
                "PostgreSQL state backend",
                connect_timeout=self._connect_timeout,
            )
        return conn

    def _execute_script(self, script: str) -> None:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    # Two processes creating the tables at once would collide in the
                    # catalogue: serialise them on an advisory lock named by the schema.
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))",
                        ("spark_core:" + self.schema,),
                    )
                    conn.execute(script)
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc

    def _write(self, statements: List[Statement]) -> None:
        """Run the statements in one transaction, sent in one pipeline (all or nothing)."""
        with self._lock:
            conn = self._connection()
            try:
                # One round trip: BEGIN, the statements and COMMIT go out together.
                with conn.pipeline(), conn.transaction():
                    cur = conn.cursor()
                    for sql, params in statements:
                        cur.execute(sql, params)
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc

    def _read(self, sql: str, params: Any = ()) -> List[Any]:
        with self._lock:
            conn = self._connection()
            try:
                rows: List[Any] = conn.execute(sql, params).fetchall()
                return rows
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc

    def _state_rows(self, values: Optional[Dict[str, Any]]) -> List[Statement]:
        if not values:
            return []
        return [
            (
                (self._sql["delete_state"], (key,))
                if value is DELETED
                else (
                    self._sql["upsert_state"],
                    (key, _dumps(value, f"state key {key!r}")),
                )
            )
            for key, value in values.items()
        ]

    # ----------------------------------------------------------------- state
    def load_state(self) -> Dict[str, Any]:
        """Return the whole graph state.

        Returns:
            Key -> value.

        Raises:
            StateBackendError: The database cannot be read.
        """
        rows = self._read(f"SELECT key, value FROM {self.schema}.spark_state")
        return {key: json.loads(value) for key, value in rows}

    def load_keys(self, keys: Iterable[str]) -> Dict[str, Any]:
        """Return the values of ``keys`` that are set, reading only those rows.

        Args:
            keys: The keys to read.

        Returns:
            Key -> value.

        Raises:
            StateBackendError: The database cannot be read.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        rows = self._read(
            f"SELECT key, value FROM {self.schema}.spark_state WHERE key = ANY(%s)",
            (wanted,),
        )
        return {key: json.loads(value) for key, value in rows}

    def save_state_keys(self, values: Dict[str, Any]) -> None:
        """Upsert ``values`` in one transaction (nothing is written if one value is bad).

        Args:
            values: Keys and JSON-serialisable values (``DELETED`` removes the key).

        Raises:
            StateValidationError: A value is not JSON-serialisable.
            StateBackendError: PostgreSQL failed (nothing is written).
        """
        rows = self._state_rows(values)
        if rows:
            self._write(rows)

    def delete_state_keys(self, keys: Iterable[str]) -> None:
        """Remove keys in one transaction.

        Args:
            keys: The keys to remove (missing keys are ignored).
        """
        self._write([(self._sql["delete_state"], (key,)) for key in keys])

    def clear_state(self) -> None:
        """Remove every state key (run records are kept)."""
        self._write([(f"DELETE FROM {self.schema}.spark_state", ())])

    # ------------------------------------------------------------------ runs
    def save_run(
        self, record: RunRecord, state_changes: Optional[Dict[str, Any]] = None
    ) -> None:
        """Insert or replace a run record (and its outputs) in one transaction.

        Args:
            record: The run record.
            state_changes: State keys to upsert in the same transaction.

        Raises:
            StateValidationError: Something is not JSON-serialisable (nothing is written).
            StateBackendError: PostgreSQL failed (nothing is written).
        """
        run_id = record["run_id"]
        s = self.schema
        statements: List[Statement] = [
            (
                f"INSERT INTO {s}.spark_runs (run_id, graph_id, status, inputs, frontier, "
                "joins, step, last_node, error) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (run_id) DO UPDATE SET graph_id=excluded.graph_id, "
                "status=excluded.status, inputs=excluded.inputs, "
                "frontier=excluded.frontier, joins=excluded.joins, step=excluded.step, "
                "last_node=excluded.last_node, error=excluded.error, updated=now()",
                (
                    run_id,
                    record.get("graph_id"),
                    record.get("status", "running"),
                    _dumps(record.get("inputs"), "run inputs"),
                    _dumps(record.get("frontier", []), "run frontier"),
                    _dumps(record.get("joins", {}), "join buffers"),
                    int(record.get("step", 0)),
                    record.get("last_node"),
                    record.get("error"),
                ),
            )
        ]
        if "outputs" in record:
            statements.append(
                (f"DELETE FROM {s}.spark_outputs WHERE run_id = %s", (run_id,))
            )
            for node_id, output in record["outputs"].items():
                statements.append(
                    (
                        self._sql["output"],
                        (
                            run_id,
                            node_id,
                            0,
                            _dumps(output, f"output of node {node_id!r}"),
                        ),
                    )
                )
        self._write(statements + self._state_rows(state_changes))

    def commit_step(
        self,
        run_id: str,
        step: int,
        node_id: str,
        output: Any,
        frontier: List[Any],
        joins: Optional[Dict[str, Any]],
        state_changes: Optional[Dict[str, Any]] = None,
        last_node: Optional[str] = None,
    ) -> None:
        """Commit one completed step in one transaction (and renew this run's claim).

        Args:
            run_id: The run.
            step: Step count after this step.
            node_id: The node that completed.
            output: Its output.
            frontier: Pending ``[node_id, inputs]`` entries.
            joins: Join buffers, or ``None`` when unchanged.
            state_changes: State keys written by this step.
            last_node: The run's result node so far (``None``: unchanged).

        Raises:
            StateValidationError: Something is not JSON-serialisable (nothing is written).
            RunClaimedError: This backend claimed the run but another process took the
                claim since (its lease expired): nothing is written.
            StateBackendError: PostgreSQL failed (nothing is written).
        """
        # One statement (its own transaction): data-modifying CTEs write the output, the
        # run's position and the state keys, and the final SELECT renews the claim or
        # aborts the whole statement when the claim is lost. One round trip per step.
        x = self.schema
        params: List[Any] = [
            run_id,
            node_id,
            step,
            _dumps(output, f"output of node {node_id!r}"),
            _dumps(frontier, "run frontier"),
        ]
        joins_sql = ""
        if joins is not None:
            joins_sql = "joins = %s, "
            params.append(_dumps(joins, "join buffers"))
        params += [step, last_node, run_id]
        parts = [
            f"o AS (INSERT INTO {x}.spark_outputs (run_id, node_id, step, output) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (run_id, node_id) DO UPDATE "
            "SET step = excluded.step, output = excluded.output)",
            f"r AS (UPDATE {x}.spark_runs SET frontier = %s, {joins_sql}step = %s, "
            "last_node = COALESCE(%s, last_node), status = 'running', updated = now() "
            "WHERE run_id = %s)",
        ]
        upserts = {
            k: _dumps(v, f"state key {k!r}")
            for k, v in (state_changes or {}).items()
            if v is not DELETED
        }
        deletes = [k for k, v in (state_changes or {}).items() if v is DELETED]
        if upserts:
            parts.append(
                f"u AS (INSERT INTO {x}.spark_state (key, value) "
                "SELECT * FROM unnest(%s::text[], %s::text[]) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value)"
            )
            params += [list(upserts), list(upserts.values())]
        if deletes:
            parts.append(f"d AS (DELETE FROM {x}.spark_state WHERE key = ANY(%s))")
            params.append(deletes)
        if run_id in self._claims:
            final = f"SELECT {x}.spark_renew_claim(%s, %s, %s)"
            params += [run_id, self.owner, self.lease]
        else:
            final = "SELECT 1"
        sql = "WITH " + ", ".join(parts) + " " + final
        with self._lock:
            conn = self._connection()
            try:
                conn.execute(sql, params)
            except self._psycopg.Error as exc:
                if getattr(exc, "sqlstate", None) == _CLAIM_LOST:
                    raise self._claimed_by_other(run_id) from None
                raise self._error(exc) from exc

    def load_run(self, run_id: str) -> Optional[RunRecord]:
        """Return the run record with its ``outputs``, or ``None``.

        Args:
            run_id: The run.

        Returns:
            The record, or ``None``.

        Raises:
            StateBackendError: The database cannot be read.
        """
        s = self.schema
        with self._lock:
            conn = self._connection()
            try:
                # One snapshot for both reads, so a step committed between them by
                # another process cannot show in one and not the other.
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    row = conn.execute(
                        "SELECT graph_id, status, inputs, frontier, joins, step, "
                        f"last_node, error FROM {s}.spark_runs WHERE run_id = %s",
                        (run_id,),
                    ).fetchone()
                    outputs = (
                        conn.execute(
                            f"SELECT node_id, output FROM {s}.spark_outputs "
                            "WHERE run_id = %s ORDER BY step",
                            (run_id,),
                        ).fetchall()
                        if row is not None
                        else []
                    )
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc
        if row is None:
            return None
        fields: Dict[str, Any] = dict(zip(_RUN_FIELDS, row))
        for key in ("inputs", "frontier", "joins"):
            if fields[key] is not None:
                fields[key] = json.loads(fields[key])
        fields["run_id"] = run_id
        fields["outputs"] = {node_id: json.loads(out) for node_id, out in outputs}
        return cast(RunRecord, fields)

    def list_runs(self) -> List[RunSummary]:
        """Return a summary of every run, oldest first.

        Returns:
            ``{run_id, graph_id, status, step}`` per run.

        Raises:
            StateBackendError: The database cannot be read.
        """
        rows = self._read(
            f"SELECT run_id, graph_id, status, step FROM {self.schema}.spark_runs "
            "ORDER BY seq"
        )
        return [
            RunSummary(run_id=run_id, graph_id=graph_id, status=status, step=step)
            for run_id, graph_id, status, step in rows
        ]

    def delete_run(self, run_id: str) -> None:
        """Forget a run, its outputs and its claim.

        Args:
            run_id: The run.
        """
        s = self.schema
        self._write(
            [
                (f"DELETE FROM {s}.spark_outputs WHERE run_id = %s", (run_id,)),
                (f"DELETE FROM {s}.spark_runs WHERE run_id = %s", (run_id,)),
                (f"DELETE FROM {s}.spark_claims WHERE run_id = %s", (run_id,)),
            ]
        )
        self._claims.discard(run_id)

    # ---------------------------------------------------------------- claims
    def claim_run(self, run_id: str) -> None:
        """Claim ``run_id`` for this backend's owner, with a lease of ``lease`` seconds.

        Succeeds when the run is unclaimed, already claimed by this owner, or claimed by
        someone whose lease expired. While held, the lease is renewed by every committed
        step and by a background thread.

        Args:
            run_id: The run.

        Raises:
            RunClaimedError: Another owner holds a live claim.
            StateBackendError: PostgreSQL failed.
        """
        with self._lock:
            rows = self._read(self._sql["claim"], (run_id, self.owner, self.lease))
            if not rows:
                raise self._claimed_by_other(run_id)
            self._claims.add(run_id)
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="spark-pg-lease", daemon=True
                )
                self._renewer.start()

    def _claimed_by_other(self, run_id: str) -> RunClaimedError:
        rows = self._read(
            "SELECT owner, GREATEST(EXTRACT(EPOCH FROM expires - now()), 0) "
            f"FROM {self.schema}.spark_claims WHERE run_id = %s",
            (run_id,),
        )
        owner, left = rows[0] if rows else ("another process", 0.0)
        self._claims.discard(run_id)
        return RunClaimedError(run_id, owner, float(left))

    def release_run(self, run_id: str) -> None:
        """Give up this owner's claim on ``run_id`` (best effort).

        When the database cannot be reached the claim stays until its lease expires, or
        until this owner claims the run again.

        Args:
            run_id: The run.
        """
        with self._lock:
            if run_id not in self._claims:
                return
            self._claims.discard(run_id)
            try:
                self._write(
                    [
                        (
                            f"DELETE FROM {self.schema}.spark_claims "
                            "WHERE run_id = %s AND owner = %s",
                            (run_id, self.owner),
                        )
                    ]
                )
            except StateBackendError as exc:
                logger.warning("could not release the claim on run %r: %s", run_id, exc)

    def _renew_forever(self) -> None:
        while not self._closing.wait(self.lease / 3):
            with self._lock:
                held = sorted(self._claims)
                if not held:
                    continue
                try:
                    self._write(
                        [
                            (
                                f"UPDATE {self.schema}.spark_claims SET expires = now() + "
                                "make_interval(secs => %s) "
                                "WHERE owner = %s AND run_id = ANY(%s)",
                                (self.lease, self.owner, held),
                            )
                        ]
                    )
                except StateBackendError as exc:  # the next step reports it
                    logger.warning("could not renew run claims: %s", exc)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a lock named ``name`` across every process using this database and schema.

        A PostgreSQL advisory lock on a connection of its own, held for the ``with`` block
        (closing that connection releases it, also when this process dies). The approval
        stores take it around their read-modify-write of the approvals key. It blocks: call
        it from a worker thread in async code.

        Args:
            name: What is locked.

        Yields:
            Nothing; the lock is held inside the block.

        Raises:
            StateBackendError: PostgreSQL failed.
        """
        conn = connect(
            self._dsn,
            StateBackendError,
            "PostgreSQL state backend",
            connect_timeout=self._connect_timeout,
        )
        try:
            try:
                conn.execute(
                    "SELECT pg_advisory_lock(hashtext(%s))", (f"{self.schema}:{name}",)
                )
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc
            yield
        finally:
            conn.close()

    def close(self) -> None:
        """Release this backend's claims, stop renewing them and close the connection."""
        for run_id in sorted(self._claims):
            self.release_run(run_id)
        self._closing.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
