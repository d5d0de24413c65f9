"""The backend's unprefixed routes, flow definitions and CORS, through SpineApp (no socket)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from ai_spine.local import LocalSpine
from ai_spine.server import Request, SpineApp
from tests.local.flows import Hooks, make_flows
from tests.local.http_util import call
from tests.local.serve_process import ServeProcess

KEY = "routes-key-not-secret"
#: The backend's paths outside /api/v1 (its own OpenAPI lists these), with their methods.
UNPREFIXED = [
    ("GET", "/"),
    ("GET", "/agents"),
    ("POST", "/agents"),
    ("GET", "/agents/active"),
    ("GET", "/agents/{agent_id}"),
    ("DELETE", "/agents/{agent_id}"),
    ("GET", "/executions"),
    ("GET", "/executions/{execution_id}"),
    ("POST", "/executions/{execution_id}/cancel"),
    ("GET", "/executions/{execution_id}/results"),
    ("GET", "/flows"),
    ("POST", "/flows"),
    ("POST", "/flows/execute"),
    ("GET", "/flows/{flow_id}"),
    ("PUT", "/flows/{flow_id}"),
    ("DELETE", "/flows/{flow_id}"),
    ("GET", "/health"),
    ("GET", "/health/detailed"),
    ("GET", "/messages/{execution_id}"),
    ("GET", "/metrics"),
    ("GET", "/status"),
]


@pytest.fixture
def spine() -> Iterator[LocalSpine]:
    hooks = Hooks()
    local = LocalSpine(make_flows(hooks))
    yield local
    hooks.release.set()
    local.close(timeout=2)


def ask(
    app: SpineApp,
    method: str,
    target: str,
    body: Any = None,
    headers: Optional[Dict[str, str]] = None,
) -> Tuple[int, Dict[str, str], Any]:
    """One request through the app: (status, headers, decoded body)."""
    sent = {"content-type": "application/json"}
    sent.update({k.lower(): v for k, v in (headers or {}).items()})
    data = b"" if body is None else json.dumps(body).encode()
    response = app(Request(method, target, sent, lambda: data))
    out = dict(response.headers)
    if out.get("Content-Type") == "application/json":
        return response.status, out, json.loads(response.body)
    return response.status, out, response.body.decode()


def greeter(data: Dict[str, Any]) -> Dict[str, Any]:
    return {"greeting": f"hello {data['name']}"}


def shouter(data: Dict[str, Any]) -> Dict[str, Any]:
    return {"shout": data["greeting"].upper(), "saw": sorted(data)}


def definition(**changes: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "flow_id": "greet",
        "name": "Greet",
        "description": "Greets, then shouts",
        "nodes": [
            {"id": "hello", "agent_id": "greeter", "type": "input", "depends_on": []},
            {
                "id": "loud",
                "agent_id": "shouter",
                "type": "output",
                "depends_on": ["hello"],
                "config": {"volume": 11},
            },
        ],
        "entry_point": "hello",
        "exit_points": ["loud"],
    }
    body.update(changes)
    return body


def agent(agent_id: str, handler: Any) -> Dict[str, Any]:
    return {
        "agent_id": agent_id,
        "name": agent_id,
        "description": "test agent",
        "capabilities": [],
        "agent_type": "processor",
        "handler": handler,
    }


def test_every_unprefixed_backend_path_is_served(spine: LocalSpine) -> None:
    app = SpineApp(spine)
    ids = {
        "{agent_id}": "nobody",
        "{execution_id}": "00000000-0000-4000-8000-000000000001",
        "{flow_id}": "nowhere",
    }
    for method, path in UNPREFIXED:
        target = path
        for name, value in ids.items():
            target = target.replace(name, value)
        status, _, body = ask(
            app, method, target, {} if method in ("POST", "PUT") else None
        )
        # Answered by a route: never the router's bare 404/405.
        assert status != 405, (method, path)
        assert body != {"detail": "Not Found"}, (method, path, status)


def test_a_flow_definition_runs_on_its_agents_as_the_backend_runs_it(
    spine: LocalSpine,
) -> None:
    spine.create_agent(agent("greeter", greeter))
    spine.create_agent(agent("shouter", shouter))
    app = SpineApp(spine)
    status, _, created = ask(app, "POST", "/flows", definition())
    assert status == 200
    assert created["nodes"][1]["config"] == {"volume": 11}
    assert (created["entry_point"], created["exit_points"]) == ("hello", ["loud"])
    assert created["version"] == "1.0.0"
    status, _, started = ask(
        app,
        "POST",
        "/flows/execute",
        {"flow_id": "greet", "input_data": {"name": "ada"}},
    )
    assert status == 200 and started["status"] == "pending"
    done = spine.wait_for_execution(started["execution_id"], 10)
    # Keyed by exit point; the node saw the run's input plus its dependency's output.
    assert done["output_data"] == {
        "loud": {"shout": "HELLO ADA", "saw": ["greeting", "name"]}
    }
    status, _, fetched = ask(app, "GET", "/flows/greet")
    assert status == 200 and fetched["nodes"] == created["nodes"]
    # POST /flows again replaces it, as the backend does; PUT too.
    renamed = definition(name="Greet again")
    assert ask(app, "POST", "/flows", renamed)[2]["name"] == "Greet again"
    status, _, updated = ask(
        app, "PUT", "/api/v1/flows/greet", definition(name="Third")
    )
    assert (status, updated["name"]) == (200, "Third")
    status, _, body = ask(app, "DELETE", "/flows/greet")
    assert (status, body["message"]) == (200, "Flow 'greet' deleted successfully")


def test_api_v1_flows_takes_a_definition_and_keeps_its_409(spine: LocalSpine) -> None:
    spine.create_agent(agent("greeter", greeter))
    spine.create_agent(agent("shouter", shouter))
    app = SpineApp(spine)
    assert ask(app, "POST", "/api/v1/flows", definition())[0] == 201
    status, _, body = ask(app, "POST", "/api/v1/flows", definition())
    assert (status, body) == (409, {"detail": "Flow 'greet' already exists"})
    # A Python-defined flow cannot be replaced by a definition from a client.
    status, _, _ = ask(app, "POST", "/flows", definition(flow_id="echo"))
    assert status == 409


@pytest.mark.parametrize(
    "changes, where, words",
    [
        (
            {
                "nodes": [{"id": "a", "type": "input", "depends_on": []}],
                "entry_point": "a",
            },
            ["body", "nodes", 0, "agent_id"],
            "node 'a' has no agent_id",
        ),
        (
            {
                "nodes": [{"id": "a", "agent_id": "ghost", "type": "input"}],
                "entry_point": "a",
            },
            ["body", "nodes", 0, "agent_id"],
            "Agent 'ghost' not found",
        ),
        (
            {
                "nodes": [
                    {"id": "a", "agent_id": "greeter", "type": "input"},
                    {"id": "b", "agent_id": "greeter", "type": "wizard"},
                ],
                "entry_point": "a",
            },
            ["body", "nodes", 1, "type"],
            "Input should be",
        ),
        (
            {
                "nodes": [
                    {
                        "id": "a",
                        "agent_id": "greeter",
                        "type": "input",
                        "depends_on": ["b"],
                    },
                    {
                        "id": "b",
                        "agent_id": "greeter",
                        "type": "output",
                        "depends_on": ["a"],
                    },
                ],
                "entry_point": "a",
            },
            ["body", "entry_point"],
            "only the entry point may have no dependencies",
        ),
        (
            {"exit_points": ["nowhere"]},
            ["body", "exit_points"],
            "exit point 'nowhere' is not a node",
        ),
        ({"description": None}, ["body", "description"], "Field required"),
    ],
)
def test_a_definition_that_cannot_run_locally_is_refused_clearly(
    spine: LocalSpine, changes: Dict[str, Any], where: List[Any], words: str
) -> None:
    spine.create_agent(agent("greeter", greeter))
    spine.create_agent(agent("shouter", shouter))
    app = SpineApp(spine)
    status, _, body = ask(app, "POST", "/flows", definition(**changes))
    assert status == 422
    found = [d for d in body["detail"] if d["loc"] == where]
    assert found and words in found[0]["msg"], body
    assert "input" in found[0]
    assert "greet" not in [f["flow_id"] for f in spine.list_flows()]


def test_a_dependency_cycle_is_refused(spine: LocalSpine) -> None:
    spine.create_agent(agent("greeter", greeter))
    nodes = [
        {"id": "a", "agent_id": "greeter", "type": "input"},
        {
            "id": "b",
            "agent_id": "greeter",
            "type": "processor",
            "depends_on": ["a", "c"],
        },
        {"id": "c", "agent_id": "greeter", "type": "output", "depends_on": ["b"]},
    ]
    status, _, body = ask(
        SpineApp(spine),
        "POST",
        "/flows",
        definition(nodes=nodes, entry_point="a", exit_points=["c"]),
    )
    assert status == 422
    assert body["detail"][0]["msg"] == "the nodes' dependencies form a cycle"


class AgentHandler(BaseHTTPRequestHandler):
    """An agent speaking the backend's protocol: POST /execute -> {"output": ...}."""

    seen: List[Dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        length = int(self.headers["Content-Length"])
        envelope = json.loads(self.rfile.read(length))
        AgentHandler.seen.append({"path": self.path, **envelope})
        data = json.dumps({"output": {"n": envelope["input"]["n"] * 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_an_endpoint_agent_gets_the_backends_execute_call(spine: LocalSpine) -> None:
    server = HTTPServer(("127.0.0.1", 0), AgentHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        spine.create_agent(
            {
                "agent_id": "doubler",
                "name": "Doubler",
                "description": "doubles n",
                "endpoint": url,
                "capabilities": ["math"],
                "agent_type": "processor",
            }
        )
        nodes = [
            {
                "id": "twice",
                "agent_id": "doubler",
                "type": "processor",
                "config": {"k": 1},
            }
        ]
        body = definition(nodes=nodes, entry_point="twice", exit_points=["twice"])
        assert ask(SpineApp(spine), "POST", "/flows", body)[0] == 200
        started = spine.execute_flow("greet", {"n": 21})
        done = spine.wait_for_execution(started["execution_id"], 10)
        assert done["output_data"] == {"twice": {"n": 42}}
        call = AgentHandler.seen[-1]
        assert call["path"] == "/execute"
        assert (call["node_id"], call["config"]) == ("twice", {"k": 1})
        assert call["execution_id"] == started["execution_id"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_unprefixed_execution_routes_answer_with_the_backends_shapes(
    spine: LocalSpine,
) -> None:
    app = SpineApp(spine)
    runs = [spine.execute_flow(f, {"text": "a"}) for f in ("echo", "shout", "echo")]
    for run in runs:
        spine.wait_for_execution(run["execution_id"], 10)
    status, _, listed = ask(app, "GET", "/executions?flow_id=echo&limit=5")
    assert status == 200 and listed["flow_id"] == "echo" and listed["count"] == 2
    assert {e["flow_id"] for e in listed["executions"]} == {"echo"}
    shout = runs[1]["execution_id"]
    status, _, results = ask(app, "GET", f"/executions/{shout}/results")
    assert status == 200 and results["count"] == 2
    assert [r["node_id"] for r in results["node_results"]] == ["upper", "exclaim"]
    assert results["node_results"][0]["status"] == "completed"
    status, _, v1 = ask(app, "GET", f"/api/v1/executions/{shout}/results")
    assert v1["execution"]["execution_id"] == shout
    status, _, messages = ask(app, "GET", f"/messages/{shout}")
    assert (status, messages["execution_id"], messages["count"]) == (200, shout, 2)
    status, _, body = ask(app, "POST", f"/executions/{shout}/cancel")
    assert (status, body) == (
        404,
        {"detail": f"Execution '{shout}' not found or not running"},
    )
    status, _, health = ask(app, "GET", "/health/detailed")
    assert health["status"] == "healthy" and isinstance(health["timestamp"], float)


def test_cors_answers_as_the_backend_with_a_key(spine: LocalSpine) -> None:
    app = SpineApp(spine, api_key=KEY)
    origin = {"Origin": "https://app.example"}
    # A preflight needs no key (browsers send none), and names the origin.
    status, headers, text = ask(
        app,
        "OPTIONS",
        "/api/v1/flows/execute",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert (status, text) == (200, "OK")
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Credentials"] == "true"
    # Every other request still needs the key; its answer carries the CORS headers.
    status, headers, _ = ask(app, "GET", "/api/v1/flows", headers=origin)
    assert status == 401 and headers["Access-Control-Allow-Origin"] == "*"
    keyed = {**origin, "Authorization": f"Bearer {KEY}"}
    status, headers, _ = ask(app, "GET", "/api/v1/flows", headers=keyed)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    # Without Origin, no CORS headers; OPTIONS that is not a preflight is a 401 first.
    assert "Access-Control-Allow-Origin" not in ask(app, "GET", "/health")[1]
    assert ask(app, "OPTIONS", "/api/v1/flows")[0] == 401
    status, _, text = ask(
        app,
        "OPTIONS",
        "/flows",
        headers={**origin, "Access-Control-Request-Method": "TRACE"},
    )
    assert (status, text) == (400, "Disallowed CORS method")


def test_a_keyless_server_allows_loopback_origins_only(spine: LocalSpine) -> None:
    app = SpineApp(spine)
    preflight = {"Access-Control-Request-Method": "POST"}
    status, headers, text = ask(
        app,
        "OPTIONS",
        "/flows",
        headers={"Origin": "https://evil.example", **preflight},
    )
    assert (status, text) == (400, "Disallowed CORS origin")
    assert "Access-Control-Allow-Origin" not in headers
    assert (
        "Access-Control-Allow-Origin"
        not in ask(app, "GET", "/flows", headers={"Origin": "https://evil.example"})[1]
    )
    local = {"Origin": "http://localhost:5173"}
    status, headers, _ = ask(app, "OPTIONS", "/flows", headers={**local, **preflight})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    status, headers, _ = ask(app, "GET", "/flows", headers=local)
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert headers["Vary"] == "Origin"


def test_users_me_reports_the_open_modes_credits(spine: LocalSpine) -> None:
    status, _, user = ask(SpineApp(spine), "GET", "/api/v1/users/me")
    assert status == 200
    assert (user["credits"], user["rate_limit"]) == (999999, 10000)


@pytest.mark.slow
def test_a_real_serve_runs_a_definition_and_answers_cors() -> None:
    agents = HTTPServer(("127.0.0.1", 0), AgentHandler)
    thread = threading.Thread(target=agents.serve_forever, daemon=True)
    thread.start()
    server = ServeProcess(["--demo", "--api-key", KEY])
    try:
        auth = {"Authorization": f"Bearer {KEY}", "Origin": "https://app.example"}
        doubler = {
            "agent_id": "doubler",
            "name": "Doubler",
            "description": "doubles n",
            "endpoint": f"http://127.0.0.1:{agents.server_address[1]}",
            "capabilities": ["math"],
            "agent_type": "processor",
        }
        status, headers, _ = call("POST", server.url + "/agents", None, auth, doubler)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
        nodes = [{"id": "twice", "agent_id": "doubler", "type": "processor"}]
        body = definition(nodes=nodes, entry_point="twice", exit_points=["twice"])
        assert call("POST", server.url + "/flows", None, auth, body)[0] == 200
        run = {"flow_id": "greet", "input_data": {"n": 4}}
        _, _, started = call("POST", server.url + "/flows/execute", None, auth, run)
        deadline = time.monotonic() + 20
        done: Dict[str, Any] = {}
        while time.monotonic() < deadline:
            url = f"{server.url}/executions/{started['execution_id']}"
            done = call("GET", url, None, auth)[2]
            if done["status"] != "pending" and done["status"] != "running":
                break
            time.sleep(0.02)
        assert (done["status"], done["output_data"]) == (
            "completed",
            {"twice": {"n": 8}},
        )
        # A preflight needs no key; a request without one is still refused.
        preflight = {
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
        }
        request = urllib.request.Request(
            server.url + "/flows/execute", headers=preflight, method="OPTIONS"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert (answer.status, answer.read()) == (200, b"OK")
            assert (
                answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
            )
        assert call("GET", server.url + "/flows")[0] == 401
    finally:
        server.stop()
        agents.shutdown()
        agents.server_close()
        thread.join(5)
