"""Drive the published ``ai-spine-sdk`` 2.3.1 against a server; print one JSON line per call.

Run in its own interpreter as ``python published_sdk_driver.py SDK_DIR BASE_URL API_KEY``,
with ``SDK_DIR`` holding that release (it shadows this project's ``ai_spine``).
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any, Callable


def main() -> None:
    """Call every SDK method that works on the backend and print each outcome."""
    sdk_dir, base_url, api_key = sys.argv[1:4]
    # The release, not this project's editable install, must answer ``import ai_spine``.
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, sdk_dir)
    import ai_spine
    from ai_spine import AISpine

    warnings.simplefilter("ignore")
    out = {"version": ai_spine.__version__}
    print(json.dumps(out), flush=True)
    client = AISpine(api_key=api_key, base_url=base_url, max_retries=0)

    def record(name: str, call: Callable[[], Any]) -> Any:
        try:
            value = call()
        except Exception as exc:  # the outcome is what the test compares
            entry = {
                "call": name,
                "error": type(exc).__name__,
                "status": getattr(exc, "status_code", None),
                "message": str(exc),
            }
            print(json.dumps(entry), flush=True)
            return None
        print(json.dumps({"call": name, "value": value}, default=str), flush=True)
        return value

    record("health_check", client.health_check)
    record("get_status", client.get_status)
    record("get_metrics", client.get_metrics)
    record("list_flows", client.list_flows)
    record("get_flow", lambda: client.get_flow("sentiment"))
    record("get_flow_missing", lambda: client.get_flow("ghost"))
    done = record(
        "execute_and_wait",
        lambda: client.execute_and_wait("echo", {"message": "hi"}, interval=0.05),
    )
    started = record(
        "execute_flow", lambda: client.execute_flow("sentiment", {"text": "I love it"})
    )
    if started:
        record(
            "wait_for_execution",
            lambda: client.wait_for_execution(started["execution_id"], interval=0.05),
        )
        record("get_execution", lambda: client.get_execution(started["execution_id"]))
    if done:
        record("cancel_ended", lambda: client.cancel_execution(done["execution_id"]))
    record("execute_unknown_flow", lambda: client.execute_flow("ghost", {}))
    agent = {
        "agent_id": "summariser",
        "name": "Summariser",
        "description": "Summarises text",
        "endpoint": "http://127.0.0.1:9/summarise",
        "capabilities": ["summarise"],
        "agent_type": "processor",
    }
    record("create_agent", lambda: client.create_agent(agent))
    record(
        "create_agent_again", lambda: client.create_agent(dict(agent, name="Renamed"))
    )
    record("list_agents", client.list_agents)
    record("delete_agent", lambda: client.delete_agent("summariser"))
    record("delete_agent_missing", lambda: client.delete_agent("summariser"))
    record("get_current_user", client.get_current_user)
    record("check_credits", client.check_credits)
    wrong = AISpine(api_key="sk_wrong", base_url=base_url, max_retries=0)
    record("wrong_key", lambda: wrong.execute_flow("echo", {}))


if __name__ == "__main__":
    main()
