"""``serve_main`` in this process: startup failures release what they opened, signals stop it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import ai_spine.serve_cli as server_module
from ai_spine.local import LocalSpine
from ai_spine.serve_cli import serve_main
from ai_spine.server import SpineServer
from tests.local.http_util import call

KEY = "serve-main-key"


class RecordingSpine(LocalSpine):
    """A LocalSpine that remembers every instance and whether it was closed."""

    made: List["RecordingSpine"] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = False
        RecordingSpine.made.append(self)

    def close(self, timeout: float = 5.0) -> int:
        self.closed = True
        return super().close(timeout)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[RecordingSpine]]:
    RecordingSpine.made = []
    monkeypatch.setattr(server_module, "LocalSpine", RecordingSpine)
    yield RecordingSpine.made


def test_a_port_in_use_closes_the_spine_it_opened(
    tmp_path: Path,
    recording: List[RecordingSpine],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        db = str(tmp_path / "x.sqlite")
        assert serve_main(["--port", str(port), "--db", db, "--demo"]) == 2
        assert serve_main(["--port", str(port), "--max-executions", "0"]) == 2
        assert serve_main(["--port", str(port), "--max-executions", "7"]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert [s.closed for s in recording] == [True, True, True]
    assert [s.max_executions for s in recording] == [10_000, None, 7]


def test_a_bad_flows_reference_opens_no_spine(
    tmp_path: Path, recording: List[RecordingSpine], capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "x.sqlite")
    argv = ["--port", "0", "--db", db, "--flows", "tests.local.flows:Hooks"]
    assert serve_main(argv) == 2
    assert "expected a LocalSpine or a dict" in capsys.readouterr().err
    assert recording == []  # flows are loaded before the store is opened
    assert not Path(db).exists()


def test_options_are_passed_to_the_spine_built_with_the_flows(
    recording: List[RecordingSpine],
) -> None:
    with socket.socket() as taken:  # a port in use: serve_main stops after building it
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        argv = ["--port", str(taken.getsockname()[1])]
        argv += ["--flows", "tests.local.flows:served_flows", "--max-concurrency", "3"]
        argv += ["--allow-module", "tests.local", "--allow-module", "myapp.tools"]
        assert serve_main(argv) == 2
    (spine,) = recording
    assert spine.max_concurrency == 3
    assert spine.allow_modules == ("tests.local", "myapp.tools")
    assert [f["flow_id"] for f in spine.list_flows()] == [
        "echo",
        "shout",
        "fail",
        "sleep",
    ]


@pytest.mark.parametrize(
    "option",
    [
        ["--db", "x.sqlite"],
        ["--max-concurrency", "2"],
        ["--max-executions", "5"],
        ["--allow-module", "tests"],
    ],
)
def test_options_a_given_local_spine_would_ignore_are_refused(
    option: List[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["--port", "0", "--flows", "tests.local.flows:served_spine", *option]
    assert serve_main(argv) == 2
    err = capsys.readouterr().err
    assert f"{option[0]} cannot apply to the LocalSpine given by --flows" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_flows_given_twice_or_two_local_spines_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    twice = ["--flows", "tests.local.flows:served_flows"] * 2
    assert serve_main(["--port", "0", *twice]) == 2
    assert "flow 'echo' is given twice" in capsys.readouterr().err
    spines = ["--flows", "tests.local.flows:served_spine"] * 2
    assert serve_main(["--port", "0", *spines]) == 2
    assert "only one --flows may give a LocalSpine" in capsys.readouterr().err


def test_a_bad_module_prefix_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert serve_main(["--port", "0", "--allow-module", "my app"]) == 2
    assert "prefix 'my app': not a dotted module name" in (capsys.readouterr().err)


@pytest.mark.parametrize(
    "ref, message",
    [
        ("no_colon", "expects MODULE:OBJECT"),
        ("tests.local.flows:missing", "has no 'missing'"),
        (
            "tests.local.flows:Fail",
            "expected a LocalSpine or a dict of flows, got Fail",
        ),
        ("tests.local.flows:make_flows", "calling it failed"),
    ],
)
def test_flows_references_that_cannot_be_used_name_the_reason(
    ref: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve_main(["--port", "0", "--flows", ref]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_flow_that_cannot_be_registered_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.local.flows as flows

    monkeypatch.setattr(flows, "bad_flows", {"bad": 42}, raising=False)
    assert serve_main(["--port", "0", "--flows", "tests.local.flows:bad_flows"]) == 2
    assert "flow 'bad'" in capsys.readouterr().err


def test_a_bad_spec_added_to_a_given_local_spine_names_its_flow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.local.flows as flows

    bad = {"bad": {"id": "x", "start": "x", "nodes": []}}
    monkeypatch.setattr(flows, "bad_specs", bad, raising=False)
    argv = ["--port", "0", "--flows", "tests.local.flows:served_spine"]
    assert serve_main(argv + ["--flows", "tests.local.flows:bad_specs"]) == 2
    assert "error: flow 'bad': spec: invalid spec" in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_main(["--help"]) == 0
    assert "--flows" in capsys.readouterr().out


def test_serve_main_runs_until_sigterm_then_restores_the_handlers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole CLI path in process: env key, --flows giving a LocalSpine, --verbose."""
    ready = threading.Event()
    servers: List[SpineServer] = []
    real_start = SpineServer.start

    def start(self: SpineServer) -> SpineServer:
        real_start(self)
        servers.append(self)
        ready.set()
        return self

    monkeypatch.setattr(SpineServer, "start", start)
    monkeypatch.setenv("AI_SPINE_SERVE_API_KEY", KEY)
    seen: Dict[str, Any] = {}

    def client() -> None:
        try:
            if ready.wait(20):
                url = servers[0].url
                seen["health"] = call("GET", url + "/health")[0]
                seen["anonymous"] = call("GET", url + "/api/v1/flows")[0]
                auth = {"Authorization": f"Bearer {KEY}"}
                seen["flows"] = call("GET", url + "/api/v1/flows", headers=auth)[2]
        finally:  # always stop serve_main, even if a request above failed
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    level = logging.getLogger("ai_spine.server").level
    thread = threading.Thread(target=client)
    thread.start()
    code = serve_main(
        ["--port", "0", "--flows", "tests.local.flows:served_spine", "--verbose"]
    )
    thread.join(10)
    assert code == 0
    assert seen["health"] == 200 and seen["anonymous"] == 401
    assert [f["flow_id"] for f in seen["flows"]["flows"]] == ["echo"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert logging.getLogger("ai_spine.server").level == level
    assert not logging.getLogger("ai_spine.server").handlers
    out, err = capsys.readouterr()
    assert "API key required" in out and "flows: echo" in out
    assert out.rstrip().endswith("shutting down")
    assert '"GET /api/v1/flows HTTP/1.1" 401' in err  # --verbose access log
    assert KEY not in out + err
    assert servers[0].spine.health_check()["status"] == "stopping"  # closed
