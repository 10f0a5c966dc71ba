"""Cancelling running jobs: a cooperative one stops itself; one that ignores the request is killed."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from core.app import Jobyard
from jobs.cancel import cancel_run
from jobs.enqueue import enqueue
from jobs.models import Attempt, Run
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses, run_cli, wait_for


def run_of(app: Jobyard, run_id: str) -> Run:
    with app.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def attempts_of(app: Jobyard, run_id: str) -> list[Attempt]:
    with app.sessions() as session:
        return list(session.scalars(select(Attempt).where(Attempt.run_id == run_id)))


def test_a_cooperative_job_stops_itself(app: Jobyard, start_workers: Callable[..., WorkerProcesses]) -> None:
    run_id = enqueue("demo.sleep", {"seconds": 60}, app=app)
    start_workers(1)
    wait_for(lambda: run_of(app, run_id).status == "running", what="the run to start")
    result = run_cli(app, "cancel", run_id, "--by", "alice", "--json")
    assert result.returncode == 0, result.stderr
    assert '"status": "running"' in result.stdout  # asked to stop
    # Stops by itself, well inside the 2 s grace the tests give before a hard stop.
    wait_for(lambda: run_of(app, run_id).status == "cancelled", timeout=20, what="the run to stop")
    [attempt] = attempts_of(app, run_id)
    assert (attempt.outcome, attempt.error_class) == ("cancelled", "Cancelled")
    assert run_of(app, run_id).cancel_requested_by == "alice"


def test_a_job_ignoring_the_request_is_stopped_hard(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    run_id = enqueue("test.stubborn", {"seconds": 60}, app=app)
    after = enqueue("demo.noop", app=app)
    start_workers(1)
    wait_for(lambda: run_of(app, run_id).status == "running", what="the run to start")
    assert cancel_run(app, run_id, by="alice") is RunStatus.RUNNING
    wait_for(lambda: run_of(app, run_id).status == "cancelled", timeout=30, what="the hard stop")
    [attempt] = attempts_of(app, run_id)
    assert attempt.outcome == "cancelled" and "stopped hard" in (attempt.error_message or "")
    # The worker process was replaced and the queue goes on; the cancelled run is never taken again.
    wait_for(lambda: run_of(app, after).status == "completed", timeout=30, what="the next run")
    assert len(attempts_of(app, run_id)) == 1
