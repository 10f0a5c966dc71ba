"""The command line: --json output, and exit 2 with a one-line message on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.app import Jobyard
from core.cli import cli
from tests.helpers import run_of
from workers.worker import JobyardWorker


@pytest.fixture
def invoke(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> object:
    for key, value in app.child_env().items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return run


def test_enqueue_show_runs_types(invoke: object, app: Jobyard) -> None:
    run = invoke  # type: ignore[assignment]
    created = run("enqueue", "demo.fail", "times=0", "--json")
    assert created.exit_code == 0, created.output
    run_id = json.loads(created.output)["id"]
    app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)

    shown = run("show", run_id, "--json")
    detail = json.loads(shown.output)
    assert detail["status"] == "completed"
    assert detail["params"] == {"times": 0}
    assert detail["triggered_by"].startswith("cli:")
    assert [a["outcome"] for a in detail["attempt_history"]] == ["completed"]

    listed = json.loads(run("runs", "--status", "completed", "--type", "demo.fail", "--json").output)
    assert [r["id"] for r in listed] == [run_id]
    assert json.loads(run("runs", "--status", "failed", "--json").output) == []
    names = {t["name"] for t in json.loads(run("types", "--json").output)}
    assert {"demo.noop", "demo.sleep", "demo.fail", "demo.progress"} <= names
    assert "attempt 1.1" in run("show", run_id).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("enqueue", "demo.nope"), "type: unknown job type 'demo.nope'"),
        (
            ("enqueue", "demo.fail", "times=x", "extra=1"),
            "times: must be an integer, got 'x'; extra: is not a parameter of this job type",
        ),
        (("enqueue", "demo.fail", "times"), "parameters are key=value, got 'times'"),
        (("enqueue", "demo.noop", "--at", "tomorrow"), "--at must be an ISO 8601 time"),
        (("show", "nope"), "no run 'nope'"),
        (("retry", "nope"), "no run 'nope'"),
        (("runs", "--status", "sideways"), "Invalid value for '--status'"),
        (("worker", "--queues", ","), "--queues needs at least one queue name"),
    ],
)
def test_bad_input_exits_2_with_one_line(invoke: object, args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)  # type: ignore[operator]
    assert result.exit_code == 2
    assert message in result.output
    if args[0] != "runs":  # click's own usage errors print the usage line too
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_retrying_a_completed_run_is_refused(invoke: object, app: Jobyard) -> None:
    run_id = json.loads(invoke("enqueue", "demo.noop", "--json").output)["id"]  # type: ignore[operator]
    app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    result = invoke("retry", run_id)  # type: ignore[operator]
    assert result.exit_code == 2
    assert f"run {run_id} is completed; only failed runs can be retried" in result.output


def test_retrying_a_cancelled_run_points_to_run_again(invoke: object, app: Jobyard) -> None:
    run_id = json.loads(invoke("enqueue", "demo.noop", "--json").output)["id"]  # type: ignore[operator]
    assert invoke("cancel", run_id).exit_code == 0  # type: ignore[operator]
    result = invoke("retry", run_id)  # type: ignore[operator]
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert f"run {run_id} is cancelled, and a cancelled run cannot be retried; Run again" in result.output
    assert run_of(app, run_id).status == "cancelled"


def test_unmigrated_database_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server_url: str
) -> None:
    monkeypatch.setenv("JOBYARD_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    monkeypatch.setenv("JOBYARD_REDIS_URL", redis_server_url)
    result = CliRunner().invoke(cli, ["runs"])
    assert result.exit_code == 2
    assert "the database is not migrated; run `jobyard db upgrade` first" in result.output
