"""The wire format of DaskExecutor, without a cluster: what travels and what comes back."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading

import pytest

from spark_core.distributed import (
    DaskExecutor,
    DistributedError,
    UnpicklableError,
    WorkerImportError,
    run_node_remotely,
)
from tests.distributed.nodes_app import AsyncPid, BadOutput, Pid

cloudpickle = pytest.importorskip("cloudpickle")


def test_a_node_returns_its_output_and_its_write_log() -> None:
    blob = cloudpickle.dumps((Pid(name="p"), {"a": 1}, {"run_id": "r"}, None, {}))
    output, writes, deleted, where = pickle.loads(run_node_remotely("p", blob))
    assert output == {"pid": os.getpid(), "seen": {"a": 1}}
    assert writes == {"count": 1} and deleted == []
    assert where == f"(no worker) (pid {os.getpid()})"


def test_an_async_node_runs_and_its_deletions_travel_back() -> None:
    state = {"gone": 1, "kept": 2}
    blob = cloudpickle.dumps((AsyncPid(name="a"), {"x": 1}, {}, {"old": 1}, state))
    output, writes, deleted, _ = pickle.loads(run_node_remotely("a", blob))
    assert output["before"] == {"x": 1}
    assert writes == {} and deleted == ["gone"]


def test_an_unpicklable_output_is_refused_naming_the_node() -> None:
    blob = cloudpickle.dumps((BadOutput(name="bad"), {}, {}, None, {}))
    with pytest.raises(UnpicklableError) as info:
        run_node_remotely("bad", blob)
    assert (info.value.node_id, info.value.what) == ("bad", "its output")


def test_a_missing_module_names_the_module_and_the_node() -> None:
    blob = b"\x80\x04cno_such_module_x\nC\n."  # a pickle of a class nobody has
    with pytest.raises(WorkerImportError) as info:
        run_node_remotely("n", blob)
    assert info.value.module == "no_such_module_x" and info.value.node_id == "n"


def test_the_errors_survive_pickling_as_they_cross_processes() -> None:
    for error in (
        UnpicklableError("n", "its input", "TypeError: no"),
        WorkerImportError("n", "mod", "tcp://127.0.0.1:1 (pid 1)"),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)


def test_a_lock_in_the_input_is_named_as_the_input() -> None:
    from spark_core.distributed import _pickle_payload

    with pytest.raises(UnpicklableError) as info:
        _pickle_payload(Pid(name="p"), {"lock": threading.Lock()}, {}, {})
    assert info.value.what == "its input" and "node 'p'" in str(info.value)


def test_importing_the_packages_and_the_module_does_not_import_dask() -> None:
    code = (
        "import sys, spark_core, ai_spine, spark_core.distributed, ai_spine.serve_cli\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_an_executor_needs_an_address_or_a_client() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(DistributedError, match="needs a scheduler address"):
        DaskExecutor(42)
