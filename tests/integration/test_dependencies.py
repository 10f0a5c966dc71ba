"""Runs that depend on other runs: A → B → C, against real Redis and SQL."""

from __future__ import annotations

import pytest

from core.app import Jobyard
from jobs.actions import RunNotRetryable, retry_run
from jobs.enqueue import enqueue
from jobs.models import Run, RunLog
from jobs.params import InvalidJobRequest
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases


def status(app: Jobyard, run_id: str) -> str:
    with app.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.status


def drain(app: Jobyard) -> None:
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)


def test_a_chain_runs_in_order(app: Jobyard) -> None:
    a = enqueue("demo.noop", app=app)
    b = enqueue("demo.noop", depends_on=[a], app=app)
    c = enqueue("demo.noop", depends_on=[b], app=app)
    assert (status(app, b), status(app, c)) == ("waiting", "waiting")
    assert app.flush() and app.redis.lrange("rq:queue:default", 0, -1) == [a.encode()]  # only A is queued
    drain(app)
    assert [status(app, r) for r in (a, b, c)] == ["completed"] * 3
    with app.sessions() as session:
        runs = {r.id: r for r in session.query(Run).filter(Run.id.in_([a, b, c]))}
    assert runs[a].finished_at <= runs[b].started_at and runs[b].finished_at <= runs[c].started_at  # type: ignore[operator]


def test_a_failure_cancels_the_rest_of_the_chain(app: Jobyard) -> None:
    a = enqueue("demo.fail", {"times": 9}, app=app)
    with app.engine.begin() as conn:
        conn.execute(Run.__table__.update().where(Run.__table__.c.id == a).values(max_attempts=1))
    b = enqueue("demo.noop", depends_on=[a], app=app)
    c = enqueue("demo.noop", depends_on=[b], app=app)
    drain(app)
    assert [status(app, r) for r in (a, b, c)] == ["failed", "cancelled", "cancelled"]
    with app.sessions() as session:
        b_run, c_run = session.get(Run, b), session.get(Run, c)
        assert b_run is not None and c_run is not None
        assert b_run.error == f"cancelled: run {a}, which it depends on, failed"
        assert c_run.error == f"cancelled: run {b}, which it depends on, cancelled"
        assert session.query(RunLog).filter(RunLog.run_id == c).count() == 1
    late = enqueue("demo.noop", depends_on=[a], app=app)  # already doomed when enqueued
    assert status(app, late) == "cancelled"


def test_unknown_dependencies_are_refused(app: Jobyard) -> None:
    with pytest.raises(InvalidJobRequest, match="depends_on: unknown run 'nope'"):
        enqueue("demo.noop", depends_on=["nope"], app=app)


def test_retry_leaves_a_run_whose_dependency_has_not_completed(app: Jobyard) -> None:
    parent = enqueue("demo.noop", app=app)
    waiting = enqueue("demo.noop", depends_on=[parent], app=app)
    with pytest.raises(RunNotRetryable, match=f"depends on run {parent}, which is pending, not completed") as refused:
        retry_run(app, waiting, by="alice")
    assert refused.value.reason == "waiting_on_dependency"
    # Even a failed one (a state no path leads to today): retrying it would run it before its parent.
    with app.engine.begin() as conn:
        conn.execute(Run.__table__.update().where(Run.__table__.c.id == waiting).values(status="failed"))
    with pytest.raises(RunNotRetryable, match="only failed runs whose dependencies have completed"):
        retry_run(app, waiting, by="alice")
    assert status(app, waiting) == "failed"
    drain(app)  # the parent completes: now the retry goes through, and the run runs
    retry_run(app, waiting, by="alice")
    drain(app)
    assert status(app, waiting) == "completed"
