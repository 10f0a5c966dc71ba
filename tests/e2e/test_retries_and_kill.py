"""Real worker processes: retry timing, exhausted retries, SIGKILL mid-job, manual retry."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest
from sqlalchemy import select

from core.app import Jobyard
from jobs.enqueue import enqueue
from jobs.models import Run, RunLog
from tests.conftest import WorkerProcesses, run_cli, wait_for
from tests.helpers import attempts_of, run_of
from workers.models import WorkerRecord

pytestmark = pytest.mark.both_databases


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs (gone, or a zombie nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def status_is(app: Jobyard, run_id: str, *statuses: str) -> Callable[[], bool]:
    return lambda: run_of(app, run_id).status in statuses


def test_fail_twice_then_complete_with_growing_gaps(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    run_id = enqueue("demo.fail", {"times": 2}, app=app)
    start_workers(1)
    wait_for(status_is(app, run_id, "completed", "failed"), timeout=60, what="demo.fail to finish")
    run = run_of(app, run_id)
    attempts = attempts_of(app, run_id)
    assert run.status == "completed"
    assert run.result == {"succeeded_on_attempt": 3}
    assert [a.outcome for a in attempts] == ["failed", "failed", "completed"]
    gaps = [
        (later.started_at - earlier.finished_at).total_seconds()
        for earlier, later in pairwise(attempts)
        if earlier.finished_at
    ]
    # Backoff base 1 s, doubling: never sooner than 1 s then 2 s. RQ's scheduled registry works in whole
    # seconds, so each comes back up to ~1.5 s late; the upper bounds only catch a wait that did not grow.
    assert 1.0 <= gaps[0] < 4.0, gaps
    assert 2.0 <= gaps[1] < 5.0, gaps


def test_exhausted_retries_fail_after_exactly_five_attempts(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    run_id = enqueue("test.quick_to_fail", {"times": 9}, app=app)
    start_workers(1)
    wait_for(status_is(app, run_id, "failed"), timeout=90, what="test.quick_to_fail times=9 to fail")
    attempts = attempts_of(app, run_id)
    assert [a.number for a in attempts] == [1, 2, 3, 4, 5]
    assert [a.error_message for a in attempts] == [f"planned failure {n} of 9" for n in range(1, 6)]
    assert all(a.error_class == "DemoFailure" and a.traceback for a in attempts)
    run = run_of(app, run_id)
    assert run.next_attempt_at is None and run.finished_at is not None
    assert run.error == "DemoFailure: planned failure 5 of 9"


def test_manual_retry_starts_a_new_series_and_keeps_history(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    run_id = enqueue("demo.fail", {"times": 1}, app=app)
    with app.engine.begin() as conn:  # make it fail at once: a single attempt allowed
        conn.execute(Run.__table__.update().where(Run.__table__.c.id == run_id).values(max_attempts=1))
    start_workers(1)
    wait_for(status_is(app, run_id, "failed"), timeout=30, what="first series to fail")
    result = run_cli(app, "retry", run_id, "--by", "alice")
    assert result.returncode == 0, result.stderr
    wait_for(status_is(app, run_id, "completed", "failed"), timeout=30, what="second series to end")
    run = run_of(app, run_id)
    # Attempts start over: demo.fail counts attempts per series, so with times=1 and a single attempt
    # allowed the second series fails too, and both series stay in the history.
    assert run.series == 2 and run.retried_by == "alice" and run.retried_at is not None
    assert [(a.series, a.number) for a in attempts_of(app, run_id)] == [(1, 1), (2, 1)]
    with app.sessions() as session:
        lines = [line.message for line in session.scalars(select(RunLog).where(RunLog.run_id == run_id))]
    assert "retried by alice (attempt series 2)" in lines


def test_sigkill_mid_job_counts_as_a_died_attempt_and_another_worker_finishes(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    run_id = enqueue("demo.sleep", {"seconds": 3}, app=app)
    first = start_workers(1)
    wait_for(status_is(app, run_id, "running"), timeout=30, what="the run to start")
    [attempt] = attempts_of(app, run_id)
    with app.sessions() as session:
        victim = session.get(WorkerRecord, attempt.worker)
        assert victim is not None
        victim_pid = victim.pid
    # Kill the whole first host (supervisor and worker) so that only the second one can take over.
    first.kill()
    wait_for(lambda: process_gone(victim_pid), timeout=10, what="the killed worker to disappear")
    start_workers(1)  # its supervisor reconciles: the silent worker is declared dead after 3 s
    wait_for(status_is(app, run_id, "completed"), timeout=60, what="the second worker to finish the run")
    attempts = attempts_of(app, run_id)
    assert [(a.number, a.outcome, a.error_class) for a in attempts] == [
        (1, "died", "WorkerDied"),
        (2, "completed", None),
    ]
    assert attempts[0].worker == attempt.worker != attempts[1].worker
    assert f"worker {attempt.worker} died" in (attempts[0].error_message or "")
