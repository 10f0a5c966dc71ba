"""The command line: --json output, run id prefixes, warnings, aligned listings, and exit 2 with a one-line
message on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from core.app import Jobyard
from core.cli import cli
from core.migrate import head_revision
from jobs.models import RunDependency, runs_table
from tests.helpers import run_of
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases


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
    run_id = json.loads(created.stdout)["id"]
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
    shown_text = run("show", run_id).stdout.splitlines()
    assert ["1.1", "completed"] in [line.split()[:2] for line in shown_text]


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
        (("enqueue", "demo.sleep", "seconds=1", "seconds=2"), "parameter 'seconds' is given more than once"),
        (("enqueue", "demo.noop", "--at", "0001-01-01"), "--at is out of range, got '0001-01-01'"),
        (("enqueue", "demo.noop", "--depends-on", "abcdef12"), "--depends-on: no run 'abcdef12'"),
        (("enqueue", "demo.noop", "--depends-on", "abc"), "--depends-on id 'abc' is too short"),
        (("show", "nope"), "run id 'nope' is too short: give at least 6 characters of it"),
        (("show", "abcde"), "run id 'abcde' is too short"),
        (("show", "abcdef99"), "no run 'abcdef99'"),
        (("show", "not-an-id-at-all"), "no run 'not-an-id-at-all'"),
        (("retry", "abcdef99"), "no run 'abcdef99'"),
        (("cancel", "abcdef99"), "no run 'abcdef99'"),
        (("notify", "abcdef99", "a@example.org"), "no run 'abcdef99'"),
        (("run-again", "abcdef99"), "no run 'abcdef99'"),
        (("runs", "--status", "sideways"), "Invalid value for '--status'"),
        (("worker", "--queues", ","), "--queues needs at least one queue name"),
        (("db", "upgrade", "nosuch"), "Can't locate revision identified by 'nosuch'"),
        (("users", "set-role", "olga", "--role", "viewer", "--domain", "a b"), "a domain is 1-100 letters"),
    ],
)
def test_bad_input_exits_2_with_one_line(invoke: object, args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)  # type: ignore[operator]
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_retrying_a_completed_run_is_refused(invoke: object, app: Jobyard) -> None:
    run_id = json.loads(invoke("enqueue", "demo.noop", "--json").stdout)["id"]  # type: ignore[operator]
    app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    result = invoke("retry", run_id)  # type: ignore[operator]
    assert result.exit_code == 2
    assert f"run {run_id} is completed; only failed runs can be retried" in result.output


def test_retrying_a_cancelled_run_points_to_run_again(invoke: object, app: Jobyard) -> None:
    run_id = json.loads(invoke("enqueue", "demo.noop", "--json").stdout)["id"]  # type: ignore[operator]
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


def _enqueued(invoke: object, *args: str) -> str:
    result = invoke("enqueue", *args, "--json")  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["id"])


def _rename(app: Jobyard, run_id: str, new_id: str) -> None:
    """Gives a fresh run (nothing refers to it yet) an id of the test's choosing, to share a prefix on purpose."""
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(id=new_id))


def test_a_run_is_named_by_any_unambiguous_prefix_of_its_id(invoke: object, app: Jobyard) -> None:
    run = invoke  # type: ignore[assignment]
    first, second = "abcdef0" + "1" * 25, "abcdef1" + "2" * 25
    _rename(app, _enqueued(run, "demo.noop"), first)
    _rename(app, _enqueued(run, "demo.sleep"), second)

    ambiguous = run("show", "abcdef")
    assert ambiguous.exit_code == 2 and len(ambiguous.output.strip().splitlines()) == 1, ambiguous.output
    assert (
        f"run id 'abcdef' is ambiguous: {first} (demo.noop, pending), {second} (demo.sleep, pending);"
        " give more characters" in ambiguous.output
    )
    assert json.loads(run("show", "ABCDEF0", "--json").stdout)["id"] == first
    assert json.loads(run("show", first, "--json").stdout)["id"] == first
    assert f"run {second}  demo.sleep  pending" in run("show", "abcdef1").stdout

    waiting = _enqueued(run, "demo.noop", "--depends-on", "abcdef0")
    with app.engine.connect() as conn:
        assert conn.execute(select(RunDependency.depends_on_id).where(RunDependency.run_id == waiting)).all() == [
            (first,)
        ]
    notified = json.loads(run("notify", "abcdef0", "ops@example.org", "--json").stdout)
    assert notified == {"id": first, "notify": ["ops@example.org"]}
    assert json.loads(run("cancel", "abcdef1", "--json").stdout) == {"id": second, "status": "cancelled"}
    again = json.loads(run("run-again", "abcdef1", "--json").stdout)
    assert again["again_of"] == second and run_of(app, again["id"]).type == "demo.sleep"
    refused = run("retry", "abcdef1")
    assert refused.exit_code == 2 and f"run {second} is cancelled" in refused.output


def test_show_gives_the_runs_first_start_and_each_attempts_own(invoke: object, app: Jobyard) -> None:
    run = invoke  # type: ignore[assignment]
    run_id = _enqueued(run, "test.items", "count=1", "fail_every=1")
    app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    assert run("retry", run_id[:8]).exit_code == 0
    app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)

    detail = json.loads(run("show", run_id[:8], "--json").stdout)
    first, second = detail["attempt_history"]
    assert (first["series"], second["series"]) == (1, 2)
    assert first["started_at"] < second["started_at"]
    assert detail["first_started_at"] == first["started_at"]
    assert detail["started_at"] == second["started_at"]  # the latest attempt's, as the API and the page have it
    assert detail["finished_at"] == second["finished_at"]
    text = run("show", run_id[:8]).stdout
    assert f"first_started_at  {first['started_at']}" in text
    assert f"finished_at       {second['finished_at']}" in text
    for attempt, started in (("1.1", first["started_at"]), ("2.1", second["started_at"])):
        assert any(line.split()[:1] == [attempt] and started in line for line in text.splitlines()), text


def test_a_queue_no_worker_has_listened_on_is_warned_about(invoke: object, app: Jobyard) -> None:
    run = invoke  # type: ignore[assignment]
    nowhere = run("enqueue", "demo.noop", "--queue", "nosuchqueue", "--json")
    assert nowhere.exit_code == 0
    warning = "no worker has listened on queue 'nosuchqueue': the run waits there until one does"
    assert warning in nowhere.stderr
    assert json.loads(nowhere.stdout)["warnings"] == [f"{warning} (jobyard worker --queues nosuchqueue)"]
    instance = json.loads(run("enqueue", "demo.noop", "--instance", "alpha", "--json").stdout)
    assert [w.endswith("(jobyard worker --instance alpha)") for w in instance["warnings"]] == [True]

    JobyardWorker(["default", "other"], app=app).work(burst=True)  # remembered in the workers table
    app.redis.sadd("rq:workers:elsewhere", "a-worker-of-another-record")  # registered with RQ only
    for queue in ("default", "other", "elsewhere"):
        served = run("enqueue", "demo.noop", "--queue", queue, "--json")
        assert json.loads(served.stdout)["warnings"] == [] and "warning" not in served.stderr
    assert json.loads(run("schedules", "run-now", "demo.noop", "--json").stdout)["warnings"] == []


def _column_starts(header: str) -> list[int]:
    return [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]


@pytest.mark.parametrize("command", [("types",), ("runs",)])
def test_listings_align_their_columns(invoke: object, app: Jobyard, command: tuple[str, ...]) -> None:
    run = invoke  # type: ignore[assignment]
    for job_type in ("demo.noop", "test.shared_items", "test.items"):
        _enqueued(run, job_type, *(["gate=/nowhere"] if job_type == "test.shared_items" else []))
    lines = run(*command).stdout.splitlines()
    starts = _column_starts(lines[0])
    assert len(starts) >= 4 and len(lines) > 3
    for line in lines[1:]:
        assert all(line[i - 2 : i] == "  " and line[i] != " " for i in starts[1:]), (lines[0], line)


def test_db_upgrade_answers_json(invoke: object) -> None:
    result = invoke("db", "upgrade", "--json")  # type: ignore[operator]
    assert result.exit_code == 0 and json.loads(result.stdout)["revision"] == head_revision()
