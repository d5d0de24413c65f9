"""GraphState, schemas and the state backends."""

from __future__ import annotations

import asyncio
import collections
import enum
import json
import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spark_core.errors import (
    NodeExecutionError,
    StateBackendError,
    StateValidationError,
)
from spark_core.graphs import (
    Graph,
    GraphState,
    InMemoryStateBackend,
    MissionStateModel,
    SQLiteStateBackend,
    StateBackend,
)
from spark_core.nodes import ExecutionContext, Node
from spark_core.utils import LoopLock, arun, json_copy
from tests.engine.conftest import FailingCommit, gstate


class MissionState(MissionStateModel):
    counter: int = 0
    notes: list[str] = []  # noqa: RUF012 - the seed's spelling; copied per instance


class Counter(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        state = gstate(context)
        async with state.transaction():
            counter = await state.get("counter", 0)
            await asyncio.sleep(
                0
            )  # let the other branches run: only the lock stops them
            await state.set("counter", counter + 1)
        return {"counter": counter + 1}


def test_seed_schema_and_sqlite_backend(tmp_path: Path) -> None:
    backend = SQLiteStateBackend(tmp_path / "mission_state.db")
    node = Counter()
    graph = Graph(start=node, state_backend=backend, state_schema=MissionState)
    assert arun(graph.state.get("counter")) == 0  # schema default
    graph.run_sync()
    graph.run_sync()
    typed = arun(graph.state.get_typed())
    assert isinstance(typed, MissionState)
    assert typed.counter == 2 and typed.notes == []
    backend.close()
    # The state outlives the backend object (and the process).
    reopened = SQLiteStateBackend(tmp_path / "mission_state.db")
    assert reopened.load_state() == {"counter": 2, "notes": []}


def test_mission_state_model_validates_fields() -> None:
    assert MissionState().notes is not MissionState().notes  # mutable default copied
    with pytest.raises(StateValidationError, match="counter"):
        MissionState(counter="three")
    with pytest.raises(StateValidationError, match="notes"):
        MissionState(notes=[1, 2])
    assert MissionState(counter=1, extra="ok").to_dict() == {
        "counter": 1,
        "extra": "ok",
        "notes": [],
    }

    class Required(MissionStateModel):
        name: str
        ratio: float = 0.5
        tag: Optional[str] = None

    with pytest.raises(StateValidationError, match="required field 'name'"):
        Required()
    assert Required(name="x", ratio=1).ratio == 1  # ints are fine for floats
    with pytest.raises(StateValidationError):
        Required(name="x", tag=3)
    with pytest.raises(StateValidationError):
        Required(name=5)


def test_schema_checks_every_write_without_partial_writes() -> None:
    state = GraphState(schema=MissionState)

    async def main() -> None:
        await state.set("counter", 5)
        with pytest.raises(StateValidationError, match="counter"):
            await state.set("counter", "five")
        with pytest.raises(StateValidationError):
            await state.update({"notes": ["fine"], "counter": 1.5})
        assert await state.get("counter") == 5
        assert (
            await state.get("notes") == []
        )  # the valid half of the update was not written
        await state.set("anything_else", {"free": True})  # undeclared keys are allowed
        await state.set(
            "_spark_approvals", {"id": {"status": "pending"}}
        )  # reserved keys
        await state.set_from_model(MissionState(counter=9, notes=["a"]))
        assert (await state.get_typed()).counter == 9

    arun(main())


def test_values_must_be_json() -> None:
    state = GraphState()

    async def main() -> None:
        with pytest.raises(StateValidationError, match="JSON"):
            await state.set("when", object())
        with pytest.raises(StateValidationError):
            await state.set(3, "x")  # type: ignore[arg-type]
        with pytest.raises(StateValidationError):
            await state.update(["not", "a", "dict"])  # type: ignore[arg-type]
        assert await state.snapshot() == {}

    arun(main())


def test_snapshot_is_a_deep_copy_and_delete_clear() -> None:
    state = GraphState(initial={"items": [1]})

    async def main() -> None:
        snap = await state.snapshot()
        snap["items"].append(2)
        assert await state.get("items") == [1]
        await state.delete("items")
        assert await state.get("items", "gone") == "gone"
        await state.set("k", 1)
        await state.clear()
        assert await state.snapshot() == {}

    arun(main())


def test_get_typed_needs_a_schema() -> None:
    with pytest.raises(StateValidationError, match="state_schema"):
        arun(GraphState().get_typed())
    with pytest.raises(StateValidationError):
        GraphState(schema=dict)


def test_pydantic_schema_is_accepted() -> None:
    pydantic = pytest.importorskip("pydantic")

    class PState(pydantic.BaseModel):  # type: ignore[misc, name-defined]
        counter: int = 0
        label: str = "x"

    state = GraphState(schema=PState)

    async def main() -> None:
        assert await state.get("counter") == 0
        await state.set("counter", 3)
        with pytest.raises(StateValidationError):
            await state.set("counter", "not a number")
        assert (await state.get_typed()).counter == 3
        # What is stored is what the model made of the value, not the raw input.
        await state.update({"counter": "7", "free": "7"})
        assert await state.get("counter") == 7 and await state.get("free") == "7"
        assert state.backend.load_state()["counter"] == 7

    arun(main())


def test_stored_values_are_json_copies_of_what_was_written(tmp_path: Path) -> None:
    for backend in (InMemoryStateBackend(), SQLiteStateBackend(tmp_path / "c.db")):
        state = GraphState(backend, MissionState)
        notes = ["a"]

        async def main() -> None:
            await state.set("notes", ("x", "y"))  # a tuple is stored as the list it is
            assert await state.get("notes") == ["x", "y"]
            await state.set("notes", notes)
            notes.append("changed later")
            assert await state.get("notes") == ["a"]

        arun(main())
        assert backend.load_state()["notes"] == ["a"]


_KEYS = st.one_of(
    st.text(max_size=5),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
_JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


class Color(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@given(_JSON_LIKE)
def test_json_copy_gives_what_the_json_round_trip_gives(value: Any) -> None:
    expected = json.loads(json.dumps(value, allow_nan=False))
    assert repr(json_copy(value)) == repr(expected)  # the same types, not only equal


def test_json_copy_of_subclasses_and_of_what_json_refuses() -> None:
    point = collections.namedtuple("point", "x y")
    value = {
        Level.HIGH: [Color.RED, Level.HIGH, point(1, 2.5)],
        "nested": collections.OrderedDict(a=collections.defaultdict(list)),
    }
    expected = json.loads(json.dumps(value, allow_nan=False))
    assert repr(json_copy(value)) == repr(expected)
    loop: List[Any] = []
    loop.append(loop)
    bad = [object(), {1, 2}, float("nan"), [float("inf")], {(1, 2): 3}, loop, b"x"]
    for item in bad:
        with pytest.raises((TypeError, ValueError)):
            json.dumps(item, allow_nan=False)
        with pytest.raises((TypeError, ValueError, RecursionError)):
            json_copy(item)
        with pytest.raises(StateValidationError, match="JSON"):
            arun(GraphState().set("k", item))


def test_lock_serialises_read_modify_write() -> None:
    start = Node(name="start")
    start >> [Counter(name=f"c{i}") for i in range(20)]
    graph = Graph(start=start)
    graph.run_sync()
    assert arun(graph.state.get("counter")) == 20


def test_lock_works_across_event_loops() -> None:
    state = GraphState()

    async def bump() -> None:
        async with state.lock():
            n = await state.get("n", 0)
            await asyncio.sleep(
                0
            )  # between the read and the write, where the lock matters
            await state.set("n", n + 1)

    async def many() -> None:
        await asyncio.gather(*(bump() for _ in range(5)))

    arun(many())
    arun(many())  # a new loop: the lock must not be bound to the first one
    assert arun(state.get("n")) == 10


def test_a_loop_lock_is_one_lock_per_running_event_loop() -> None:
    holder = LoopLock()

    async def twice() -> asyncio.Lock:
        first = holder.current()
        assert holder.current() is first
        async with first:  # usable in this loop
            return first

    one, other = arun(twice()), arun(twice())
    assert one is not other  # a fresh loop gets a fresh lock
    with pytest.raises(RuntimeError):
        holder.current()  # no loop runs here


def test_sqlite_backend_public_methods_for_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    graph = Graph(start=Counter(), state_backend=SQLiteStateBackend(path))
    graph.run_sync()
    other = SQLiteStateBackend(path)  # e.g. the approvals CLI
    assert other.load_state() == {"counter": 1}
    other.save_state_keys({"_spark_approvals": {"a1": "approved"}, "counter": 10})
    graph.run_sync()  # each run reloads the durable state first
    assert other.load_state()["counter"] == 11
    with pytest.raises(StateValidationError):
        other.save_state_keys({"ok": 1, "bad": object()})
    assert "ok" not in other.load_state()  # one transaction: nothing was written
    other.delete_state_keys(["_spark_approvals"])
    assert "_spark_approvals" not in other.load_state()
    assert [r["status"] for r in other.list_runs()] == ["completed", "completed"]


def test_backends_read_single_keys(tmp_path: Path) -> None:
    class OnlyWhole(StateBackend):
        """A backend that implements load_state only: load_keys builds on it."""

        def load_state(self) -> Dict[str, Any]:
            return {"a": 1, "b": [2]}

    sqlite = SQLiteStateBackend(tmp_path / "k.db")
    many = {f"k{i}": i for i in range(1200)}  # more keys than one query may name
    for backend in (InMemoryStateBackend(), sqlite):
        backend.save_state_keys({"a": 1, "b": [2], **many})
        assert backend.load_keys(["b", "missing", "a", "b"]) == {"a": 1, "b": [2]}
        assert backend.load_keys(list(many) + ["missing"]) == many
        assert backend.load_keys([]) == {}
    assert OnlyWhole().load_keys(["b", "c"]) == {"b": [2]}
    sqlite.close()


def test_a_run_reads_back_only_the_keys_whose_writes_it_dropped() -> None:
    class Counting(InMemoryStateBackend):
        def __init__(self) -> None:
            super().__init__({"kept": 0, "dropped": 0})
            self.reads: List[Any] = []

        def load_state(self) -> Dict[str, Any]:
            self.reads.append("all")
            return super().load_state()

        def load_keys(self, keys: Any) -> Dict[str, Any]:
            self.reads.append(sorted(keys))
            return super().load_keys(keys)

    class Write(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await gstate(context).set("kept", 1)
            return {}

    class WriteThenFail(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await gstate(context).set("dropped", 1)
            await asyncio.sleep(0)  # the sibling overwrites it meanwhile
            raise RuntimeError("boom")

    class OverwriteAndWait(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await gstate(context).set("dropped", 2)
            await asyncio.Event().wait()  # until the failing sibling cancels it
            return {}

    backend = Counting()
    graph = Graph(start=Write(name="w"), state_backend=backend)
    backend.reads.clear()
    graph.run_sync()
    assert backend.reads == []  # every write was committed: nothing to read back
    start = Write(name="start")
    start >> [WriteThenFail(name="x"), OverwriteAndWait(name="y")]
    graph = Graph(start=start, state_backend=backend)
    backend.reads.clear()
    with pytest.raises(NodeExecutionError):
        graph.run_sync()
    assert backend.reads == [["dropped"]]
    assert arun(graph.state.snapshot()) == {"kept": 1, "dropped": 0}


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    SQLiteStateBackend(tmp_path / "w.db")
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_in_memory_backend_runs_and_state() -> None:
    backend = InMemoryStateBackend({"seed": 1})
    graph = Graph(start=Counter(), state_backend=backend)
    result = graph.run_sync(run_id="m1")
    assert backend.load_state() == {"seed": 1, "counter": 1}
    record = backend.load_run("m1")
    assert record is not None and record["status"] == "completed"
    assert record["outputs"] == result.outputs
    backend.delete_run("m1")
    assert backend.load_run("m1") is None
    assert backend.list_runs() == []


def test_node_outputs_must_be_json_with_a_durable_backend(tmp_path: Path) -> None:
    class Weird(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"obj": object()}

    start = Node(name="start")
    start >> Weird(name="weird") >> Node(name="after")
    graph = Graph(start=start, state_backend=SQLiteStateBackend(tmp_path / "j.db"))
    with pytest.raises(StateValidationError, match="weird"):
        graph.run_sync({"v": 1}, run_id="j")
    record = graph.state.backend.load_run("j")
    assert record is not None and record["status"] == "failed"
    assert record["frontier"] == [["weird", {"v": 1}]]  # the last committed position


@pytest.mark.parametrize("durable", [True, False])
def test_a_delete_is_committed_with_the_step_that_made_it(
    tmp_path: Path, durable: bool
) -> None:
    path = tmp_path / "d.db"
    backend: Any = SQLiteStateBackend(path) if durable else InMemoryStateBackend()
    seen: Dict[str, Any] = {}

    class Pop(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            assert context.graph_state is not None
            item = await context.graph_state.get("queue")
            await context.graph_state.delete("queue")
            await context.graph_state.set("done", item)
            # What a crash right now would leave behind.
            if durable:
                other = SQLiteStateBackend(path)
                seen["mid_step"] = other.load_state()
                other.close()
            return {"item": item}

    pop = Pop(name="pop")
    pop >> Node(name="after")
    graph = Graph(start=pop, state_backend=backend, initial_state={"queue": "job-1"})
    assert graph.run_sync().outputs["pop"] == {"item": "job-1"}
    if durable:
        assert seen["mid_step"] == {"queue": "job-1"}
    assert backend.load_state() == {"done": "job-1"}
    assert arun(graph.state.get("queue")) is None


def test_plain_def_nodes_use_the_sync_state_methods(tmp_path: Path) -> None:
    import threading

    threads = []

    class Tally(Node):
        def process(self, context: ExecutionContext) -> Dict[str, Any]:
            threads.append(threading.current_thread() is threading.main_thread())
            state = gstate(context)
            state.set_sync(self.id, state.get_sync("base", 0) + 1)
            with pytest.raises(StateValidationError):
                state.update_sync({"bad": object()})
            return {}

    start = Node(name="start")
    start >> [Tally(name=f"t{i}") for i in range(4)]
    path = tmp_path / "sync.db"
    graph = Graph(
        start=start, state_backend=SQLiteStateBackend(path), initial_state={"base": 1}
    )
    graph.run_sync()
    assert threads == [False] * 4
    assert SQLiteStateBackend(path).load_state() == {
        "base": 1,
        "t0": 2,
        "t1": 2,
        "t2": 2,
        "t3": 2,
    }
    graph.state.set_sync("outside", True)  # no run in progress: written directly
    assert arun(graph.state.get("outside")) is True


def test_plain_def_nodes_read_modify_write_under_lock_sync() -> None:
    import time

    class SyncCount(Node):
        def process(self, context: ExecutionContext) -> Dict[str, Any]:
            state = gstate(context)
            with state.lock_sync():
                value = state.get_sync("n", 0)
                time.sleep(0.002)  # lets other threads in if the lock did not hold
                state.set_sync("n", value + 1)
            return {}

    class AsyncCount(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            state = gstate(context)
            async with state.lock():
                value = await state.get("n", 0)
                await asyncio.sleep(0.002)
                await state.set("n", value + 1)
            return {}

    start = Node(name="start")
    start >> [SyncCount(name=f"s{i}") for i in range(8)]
    start >> [AsyncCount(name=f"a{i}") for i in range(4)]
    graph = Graph(start=start)
    graph.run_sync()
    assert arun(graph.state.get("n")) == 12
    with graph.state.lock_sync():  # no run in progress: still usable
        graph.state.set_sync("n", 0)
    assert arun(graph.state.get("n")) == 0


def test_the_wrong_lock_for_the_code_is_a_clear_error() -> None:
    from spark_core.errors import StateLockError

    class SyncWithAsyncLock(Node):
        def process(self, context: ExecutionContext) -> Dict[str, Any]:
            gstate(context).lock()
            return {}

    class AsyncWithSyncLock(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            with gstate(context).lock_sync():
                return {}

    for node in (SyncWithAsyncLock(name="s"), AsyncWithSyncLock(name="a")):
        with pytest.raises(NodeExecutionError) as info:
            Graph(start=node).run_sync()
        assert isinstance(info.value.__cause__, StateLockError)
    with pytest.raises(StateLockError, match="lock_sync"):
        GraphState().lock()  # no event loop runs in this thread


def test_sqlite_failed_commit_rolls_back_and_the_backend_stays_usable(
    tmp_path: Path,
) -> None:
    backend = SQLiteStateBackend(tmp_path / "s.db")
    real = backend._conn
    backend._conn = FailingCommit(real)  # type: ignore[assignment]
    with pytest.raises(StateBackendError, match="disk is full") as info:
        backend.save_state_keys({"a": 1})
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert not real.in_transaction
    backend.save_state_keys({"b": 2})
    backend._conn = real
    assert backend.load_state() == {"b": 2}
    other = SQLiteStateBackend(tmp_path / "s.db")
    assert other.load_state() == {"b": 2}
    other.close()
    backend.close()


def test_sqlite_backend_on_a_file_that_is_not_a_database_closes_its_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a database, just text " * 200)
    opened: List[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(real_connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(StateBackendError, match="not a database"):
        SQLiteStateBackend(path)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_a_closed_sqlite_backend_raises_a_spark_error(tmp_path: Path) -> None:
    backend = SQLiteStateBackend(tmp_path / "closed.db")
    backend.close()
    for call in (
        backend.load_state,
        backend.list_runs,
        lambda: backend.load_run("r"),
        lambda: backend.save_state_keys({"a": 1}),
    ):
        with pytest.raises(StateBackendError, match="closed"):
            call()


@pytest.mark.parametrize("durable", [False, True])
def test_a_run_record_is_a_plain_dict_with_the_same_fields_on_every_backend(
    tmp_path: Path, durable: bool
) -> None:
    backend = (
        SQLiteStateBackend(tmp_path / "r.db") if durable else InMemoryStateBackend()
    )
    first, last = Node(name="first"), Node(name="last")
    first >> last
    Graph(start=first, state_backend=backend).run_sync({"x": 1}, run_id="r1")
    record = backend.load_run("r1")
    assert type(record) is dict
    assert record == {
        "run_id": "r1",
        "graph_id": "first",
        "status": "completed",
        "inputs": {"x": 1},
        "frontier": [],
        "joins": {},
        "step": 2,
        "last_node": "last",
        "error": None,
        "outputs": {"first": {"x": 1}, "last": {"x": 1}},
    }
    assert backend.list_runs() == [
        {"run_id": "r1", "graph_id": "first", "status": "completed", "step": 2}
    ]
