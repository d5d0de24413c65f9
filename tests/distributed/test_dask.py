"""DaskExecutor against a real two-process LocalCluster: node work, state, capabilities,
fan-out, errors, and whole LocalSpine executions that survive a killed worker."""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List

import pytest

from ai_spine.exceptions import ExecutionError
from spark_core.distributed import (
    DaskExecutor,
    SchedulerUnreachableError,
    UnpicklableError,
    WorkerImportError,
)
from spark_core.errors import CircuitOpenError, NodeExecutionError, NodeTimeoutError
from spark_core.graphs import Graph
from spark_core.nodes import Node, NodeConfig
from spark_core.nodes.capabilities import (
    CircuitBreakerCapability,
    RetryCapability,
    TimeoutCapability,
)
from tests.distributed import nodes_app
from tests.distributed.nodes_app import (
    AsyncPid,
    BadOutput,
    Broken,
    FlakyWriter,
    Pid,
    Pids,
    Sleep,
)


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_sync_and_async_nodes_run_in_worker_processes(dask_client: Any) -> None:
    first, second = Pid(name="first"), AsyncPid(name="second")
    first >> second
    graph = Graph(
        start=first,
        executor=DaskExecutor(dask_client),
        initial_state={"count": 41, "gone": True},
    )
    result = graph.run_sync({"x": 1})
    worker_pids = {pid for pid in dask_client.run(os.getpid).values()}
    assert result.outputs["first"]["seen"] == {"x": 1}
    assert result.content["before"]["pid"] == result.outputs["first"]["pid"]
    for output in result.outputs.values():
        assert output["pid"] != os.getpid()
        assert output["pid"] in worker_pids
    # The remote writes came back and were committed with their steps.
    state = graph.state.backend.load_state()
    assert state["count"] == 42 and "gone" not in state


def test_a_node_config_executor_wins_over_the_graph(dask_client: Any) -> None:
    here = Pid(name="here")
    there = Pid(name="there", config=NodeConfig(executor=DaskExecutor(dask_client)))
    here >> there
    result = Graph(start=here).run_sync()
    assert result.outputs["here"]["pid"] == os.getpid()
    assert result.outputs["there"]["pid"] != os.getpid()
    assert result.outputs["there"]["seen"] == result.outputs["here"]


def test_a_retry_resubmits_and_the_failed_attempts_writes_are_undone(
    dask_client: Any,
) -> None:
    node = FlakyWriter(
        name="flaky",
        config=NodeConfig(retry=RetryCapability(max_retries=1, initial_delay=0.0)),
    )
    graph = Graph(start=node, executor=DaskExecutor(dask_client))
    result = graph.run_sync()
    assert result.content == {"attempt": 2}
    assert result.node_results["flaky"].attempts == 2
    state = graph.state.backend.load_state()
    assert "attempt_1" not in state  # written by the failed attempt: taken back
    assert state["attempt_2"] != os.getpid()


def test_a_circuit_breaker_counts_remote_failures(dask_client: Any) -> None:
    breaker = CircuitBreakerCapability(failure_threshold=1, reset_timeout=60)
    node = Broken(name="broken", config=NodeConfig(circuit_breaker=breaker))
    graph = Graph(start=node, executor=DaskExecutor(dask_client))
    with pytest.raises(NodeExecutionError, match="remote failure"):
        graph.run_sync()
    with pytest.raises(CircuitOpenError):
        graph.run_sync()


def test_fan_out_branches_spread_across_both_workers(dask_client: Any) -> None:
    start, join = Node(name="start"), Pids(name="join")
    branches = [Sleep(0.4, f"b{i}") for i in range(4)]
    start >> branches
    branches >> join
    graph = Graph(start=start, executor=DaskExecutor(dask_client))
    result = graph.run_sync()
    assert len(set(result.content["pids"])) == 2
    assert os.getpid() not in result.content["pids"]


def _slow_tasks(dask_scheduler: Any) -> List[str]:
    return [str(k) for k in dask_scheduler.tasks if "spark-node-slow-" in str(k)]


def test_a_timeout_cancels_the_remote_task(dask_client: Any) -> None:
    slow = Sleep(1.0, "slow", NodeConfig(timeout=TimeoutCapability(0.3)))
    graph = Graph(start=slow, executor=DaskExecutor(dask_client))
    with pytest.raises(NodeExecutionError) as info:
        graph.run_sync()
    assert isinstance(info.value, NodeTimeoutError)
    # Once the workers are idle again, the scheduler holds no result of the task: it was
    # cancelled (uncancelled, the future kept alive by the error's traceback would keep
    # its result in memory).
    assert wait_until(lambda: not any(dask_client.processing().values()), 30)
    assert not dask_client.run_on_scheduler(_slow_tasks)
    assert info.value is not None


def test_unpicklable_input_is_refused_naming_the_node(dask_client: Any) -> None:
    class Holder(Node):
        async def process(self, context: Any) -> Any:
            return {"lock": threading.Lock()}

    holder, remote = Holder(name="holder"), Pid(name="remote")
    remote.config.executor = DaskExecutor(dask_client)
    holder >> remote
    with pytest.raises(NodeExecutionError) as info:
        Graph(start=holder).run_sync()
    cause = info.value.__cause__
    assert isinstance(cause, UnpicklableError)
    assert cause.node_id == "remote" and cause.what == "its input"
    assert "'remote'" in str(info.value) and "its input" in str(info.value)


def test_unpicklable_output_is_refused_naming_the_node(dask_client: Any) -> None:
    graph = Graph(start=BadOutput(name="bad"), executor=DaskExecutor(dask_client))
    with pytest.raises(NodeExecutionError) as info:
        graph.run_sync()
    assert isinstance(info.value.__cause__, UnpicklableError)
    assert "node 'bad': its output cannot be pickled" in str(info.value)


def test_a_worker_without_the_nodes_module_says_which(
    dask_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "only_here_nodes.py").write_text(
        "from spark_core.nodes import Node\n\n"
        "class OnlyHere(Node):\n"
        "    def process(self, context):\n"
        "        return {'ok': True}\n"
    )
    sys.path.insert(0, str(tmp_path))  # in this process only: the workers lack it
    try:
        from only_here_nodes import OnlyHere  # type: ignore[import-not-found]

        graph = Graph(start=OnlyHere(name="here"), executor=DaskExecutor(dask_client))
        with pytest.raises(NodeExecutionError) as info:
            graph.run_sync()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_here_nodes", None)
    cause = info.value.__cause__
    assert isinstance(cause, WorkerImportError)
    assert cause.module == "only_here_nodes" and "tcp://127.0.0.1:" in cause.worker
    assert "module 'only_here_nodes' is not importable on the Dask worker" in str(cause)


def test_an_unreachable_scheduler_is_a_typed_error_naming_it() -> None:
    pytest.importorskip("distributed")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(SchedulerUnreachableError) as info:
        DaskExecutor(address, connect_timeout=1.0)
    assert info.value.address == address
    assert f"cannot reach the Dask scheduler at {address}" in str(info.value)


def test_localspine_runs_each_execution_on_a_worker(
    dask_client: Any, pg_dsn: str, tmp_path: Path
) -> None:
    from ai_spine import LocalSpine

    log = tmp_path / "log"
    factory = functools.partial(nodes_app.durable_flow, pg_dsn, str(log))
    executor = DaskExecutor(dask_client)
    with LocalSpine({"durable": factory}, executor=executor) as spine:
        run = spine.execute_flow("durable", {"n": 1})
        done = spine.wait_for_execution(run["execution_id"], timeout=60)
        nodes = spine.get_execution_results(run["execution_id"])["node_results"]
    assert done["status"] == "completed", done
    assert done["output_data"] == {"last": {"last": "last"}}  # keyed by the exit node
    assert nodes["last"]["resumed"] is False
    assert nodes["last"]["worker"].startswith("tcp://127.0.0.1:")
    lines = log.read_text().split()
    assert lines[0::2] == ["first", "slow", "last"]
    assert str(os.getpid()) not in lines[1::2]


def test_a_run_whose_worker_is_killed_resumes_without_redoing_committed_steps(
    dask_client: Any, pg_dsn: str, tmp_path: Path
) -> None:
    from ai_spine import LocalSpine

    log = tmp_path / "log"
    factory = functools.partial(nodes_app.durable_flow, pg_dsn, str(log))
    with LocalSpine({"durable": factory}, executor=DaskExecutor(dask_client)) as spine:
        run = spine.execute_flow("durable", {})

        def slow_pid() -> int:
            for line in log.read_text().splitlines() if log.exists() else []:
                if line.startswith("slow "):
                    return int(line.split()[1])
            return 0

        victim = wait_until(slow_pid, 60)
        assert victim
        os.kill(victim, signal.SIGKILL)  # the worker dies inside step 2
        done = spine.wait_for_execution(run["execution_id"], timeout=120)
        nodes = spine.get_execution_results(run["execution_id"])["node_results"]
    assert done["status"] == "completed", done
    # Its record says so: resumed by another worker process.
    assert nodes["last"]["resumed"] is True
    assert f"(pid {victim})" not in nodes["last"]["worker"]
    nodes = log.read_text().split()[0::2]
    # The committed step (first) ran once; the killed one ran again; the rest once.
    assert nodes.count("first") == 1
    assert nodes.count("slow") == 2
    assert nodes.count("last") == 1
    # The nanny restarts the killed worker: the cluster has two workers again.
    assert wait_until(lambda: len(dask_client.scheduler_info()["workers"]) == 2, 60)


def test_a_flow_whose_module_the_workers_lack_fails_its_execution_clearly(
    dask_client: Any, tmp_path: Path
) -> None:
    from ai_spine import LocalSpine

    (tmp_path / "only_here_flows.py").write_text(
        "from spark_core.graphs import Graph\n"
        "from spark_core.nodes import Node\n\n"
        "def make():\n"
        "    return Graph(start=Node(name='n'))\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from only_here_flows import make  # type: ignore[import-not-found]

        with LocalSpine({"f": make}, executor=DaskExecutor(dask_client)) as spine:
            run = spine.execute_flow("f", {})
            with pytest.raises(ExecutionError):
                spine.wait_for_execution(run["execution_id"], timeout=60)
            done = spine.get_execution(run["execution_id"])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_here_flows", None)
    assert done["status"] == "failed"
    assert done["error_message"] is not None
    assert done["error_message"].startswith(
        "the graph factory: module 'only_here_flows' is not importable on the Dask worker"
    )


def test_serve_dask_runs_executions_on_the_cluster(dask_client: Any) -> None:
    from ai_spine import AISpine
    from tests.local.serve_process import ServeProcess

    address = dask_client.scheduler.address
    server = ServeProcess(
        ["--dask", address, "--flows", "tests.distributed.nodes_app:FLOWS"]
    )
    try:
        with AISpine(base_url=server.url) as client:
            run = client.execute_flow("pid", {"x": 1})
            done = client.wait_for_execution(run["execution_id"], timeout=60)
    finally:
        status, _, err = server.stop()
    assert status == 0, err
    assert done["status"] == "completed", done
    worker_pids = set(dask_client.run(os.getpid).values())
    output = done[
        "result"
    ]  # the graph's own output (output_data is keyed by exit node)
    assert output["pid"] in worker_pids
    assert output["seen"] == {"x": 1}


def test_serve_dask_with_an_unreachable_scheduler_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("distributed")
    from ai_spine.serve_cli import serve_main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    assert serve_main(["--port", "0", "--dask", address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"--dask: cannot reach the Dask scheduler at {address}" in err[0]


def test_cancelling_an_execution_stops_its_run_on_the_worker(
    dask_client: Any, tmp_path: Path
) -> None:
    from ai_spine import LocalSpine

    log = tmp_path / "log"
    factory = functools.partial(nodes_app.slow_flow, str(log))
    with LocalSpine({"slow": factory}, executor=DaskExecutor(dask_client)) as spine:
        run = spine.execute_flow("slow", {})
        assert wait_until(lambda: log.exists() and "slow" in log.read_text(), 60)
        spine.cancel_execution(run["execution_id"])
        assert spine.get_execution(run["execution_id"])["status"] == "cancelled"
        # The running node ends (its thread cannot be stopped) and the next never starts:
        # uncancelled, it would start at once.
        ends = tmp_path / "log.end"
        assert wait_until(lambda: ends.exists() and "slow" in ends.read_text(), 30)
        time.sleep(0.5)
    assert log.read_text().split()[0::2] == ["first", "slow"]


def test_a_wsgi_worker_runs_executions_on_the_dask_cluster(dask_client: Any) -> None:
    # What each gunicorn worker builds with make_app(dask=...): one cluster for all of them.
    from ai_spine.server.wsgi import make_app
    from tests.local.test_wsgi import _wsgi

    app = make_app(
        "tests.distributed.nodes_app:FLOWS", dask=dask_client.scheduler.address
    )
    try:
        status, _, started = _wsgi(
            app, "POST", "/api/v1/flows/execute", {"flow_id": "pid", "input_data": {}}
        )
        assert status.startswith("200"), started
        done = app.app.spine.wait_for_execution(started["execution_id"], timeout=60)
    finally:
        app.app.spine.close(timeout=2)
    assert done["status"] == "completed", done
    assert done["result"]["pid"] in set(dask_client.run(os.getpid).values())


def test_a_wsgi_app_with_an_unreachable_scheduler_is_refused_naming_it() -> None:
    pytest.importorskip("distributed")
    from ai_spine.exceptions import ValidationError
    from ai_spine.server.wsgi import make_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(
        ValidationError, match=f"cannot reach the Dask scheduler at {address}"
    ):
        make_app({}, dask=address)
