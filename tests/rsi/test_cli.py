"""``spark-spec rsi-run``, ``rsi-history`` and ``rsi-rollback``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import List, Tuple

import pytest

from spark_core.cli import main
from spark_core.rsi import ExperienceDatabase
from spark_core.spec import save_mission_spec
from tests.rsi import sample
from tests.rsi.conftest import fill


def _spark(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def empty(tmp_path: Path) -> Tuple[str, str, str]:
    """A spec file, an empty experience database and a repository folder."""
    spec = tmp_path / "mission.json"
    save_mission_spec(spec, sample.mission())
    ExperienceDatabase(str(tmp_path / "experience.db")).initialize_sync()
    return str(spec), str(tmp_path / "experience.db"), str(tmp_path / "versions")


@pytest.fixture
def files(empty: Tuple[str, str, str]) -> Tuple[str, str, str]:
    """The same, with 20 runs of the spec recorded."""
    db = ExperienceDatabase(empty[1])
    db.initialize_sync()
    asyncio.run(fill(db, version="1.0.0"))
    db.close()
    return empty


def test_rsi_run_deploys_then_history_and_rollback(
    files: Tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, db, repo = files
    code, out, err = _spark(
        capsys,
        "rsi-run",
        spec,
        "--experience-db",
        db,
        "--deploy",
        "--repository",
        repo,
        "--allow-module",
        "tests.rsi",
        "--max-hypotheses",
        "2",
    )
    assert (code, err) == (0, "")
    assert out.startswith(
        "RSI customer_service_agent: deployed (version 1.0.0 -> 1.1.0)"
    )
    assert "two_proportion_z success_rate (greater)" in out

    code, out, _ = _spark(
        capsys, "rsi-history", "--experience-db", db, "--repository", repo
    )
    assert code == 0
    lines: List[str] = out.splitlines()
    assert lines[0] == "#1 customer_service_agent: deployed (1.0.0 -> 1.1.0, winner p1)"
    assert lines[1:] == [
        "customer_service_agent:",
        "  init     1.0.0",
        "  deploy   1.1.0 (was 1.0.0) [p1]",
    ]

    code, out, _ = _spark(
        capsys, "rsi-rollback", "customer_service_agent", "--repository", repo
    )
    assert code == 0 and out.startswith(
        "customer_service_agent: rolled back to 1.0.0 (was 1.1.0)"
    )
    code, out, _ = _spark(capsys, "rsi-history", "--repository", repo, "--json")
    actions = [
        r["action"] for r in json.loads(out)["versions"]["customer_service_agent"]
    ]
    assert actions == ["init", "deploy", "rollback"]
    code, _, err = _spark(
        capsys, "rsi-rollback", "customer_service_agent", "--repository", repo
    )
    assert code == 2 and "no earlier version" in err and len(err.splitlines()) == 1


def test_rsi_run_json_without_deploy(
    files: Tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, db, _ = files
    code, out, _ = _spark(
        capsys,
        "rsi-run",
        spec,
        "--experience-db",
        db,
        "--allow-module",
        "tests.rsi",
        "--max-hypotheses",
        "0",
        "--json",
    )
    data = json.loads(out)
    assert (
        code == 0 and data["status"] == "no_proposals" and data["runs_analyzed"] == 20
    )


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["--deploy"], 2, "--deploy needs --repository"),
        (["--max-hypotheses", "-1"], 2, "--max-hypotheses must be >= 0"),
        (["--inputs", "{}"], 2, "--inputs must be a JSON list"),
        (["--allow-module", "bad module"], 2, "invalid allowed module prefix"),
    ],
)
def test_rsi_run_usage_errors(
    empty: Tuple[str, str, str],
    capsys: pytest.CaptureFixture[str],
    argv: List[str],
    status: int,
    message: str,
) -> None:
    spec, db, _ = empty
    code, out, err = _spark(capsys, "rsi-run", spec, "--experience-db", db, *argv)
    assert code == status and message in err and out == ""
    assert len(err.strip().splitlines()) == 1


def test_missing_files_and_bad_specs(
    tmp_path: Path, empty: Tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, db, _ = empty
    code, _, err = _spark(
        capsys, "rsi-run", spec, "--experience-db", str(tmp_path / "no.db")
    )
    assert code == 2 and "no experience database" in err
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"mission_id": "x", "version": "one", "graph": {"id": "g", "start": "a"}}'
    )
    code, _, err = _spark(capsys, "rsi-run", str(bad), "--experience-db", db)
    assert code == 1 and "invalid spec" in err
    code, _, err = _spark(capsys, "rsi-history")
    assert code == 2 and "--experience-db, --repository or both" in err


def test_rsi_run_asks_a_model_when_told(
    files: Tuple[str, str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.agents.fake_openai import FakeOpenAIServer, reply
    from tests.rsi.test_hypothesize import DROP_DENY

    spec, db, _ = files
    with FakeOpenAIServer([reply(json.dumps({"proposals": [DROP_DENY]}))]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        code, out, _ = _spark(
            capsys,
            "rsi-run",
            spec,
            "--experience-db",
            db,
            "--allow-module",
            "tests.rsi",
            "--model",
            "gpt-4o-mini",
            "--json",
        )
    assert code == 0 and server.requests[0]["body"]["model"] == "gpt-4o-mini"
    verdicts = {p["proposal"]["kind"]: p for p in json.loads(out)["proposals"]}
    assert verdicts["policy"]["verdict"] == "refused"
    assert verdicts["timeout"]["verdict"] == "won"
