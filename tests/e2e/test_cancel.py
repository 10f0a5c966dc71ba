"""Cancelling running jobs: a cooperative one stops itself; one that ignores the request is killed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.app import Jobyard
from jobs.cancel import cancel_run
from jobs.enqueue import enqueue
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses, run_cli, wait_for
from tests.helpers import attempts_of, run_of

pytestmark = pytest.mark.both_databases


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
