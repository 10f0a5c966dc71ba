"""Cancelling runs that are not executing, against real Redis and SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.app import Jobyard
from jobs.actions import RunNotFound, RunNotRetryable, retry_run
from jobs.cancel import RunNotCancellable, cancel_run
from jobs.dispatch import Delivery
from jobs.enqueue import enqueue
from jobs.models import Attempt
from jobs.status import RunStatus
from tests.helpers import run_of
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases


def test_a_queued_run_is_cancelled_at_once_and_never_picked_up(app: Jobyard) -> None:
    run_id = enqueue("demo.noop", app=app)
    assert app.flush()
    assert cancel_run(app, run_id, by="alice") is RunStatus.CANCELLED
    run = run_of(app, run_id)
    assert (run.status, run.error, run.cancel_requested_by) == ("cancelled", "cancelled by alice", "alice")
    assert app.redis.llen("rq:queue:default") == 0
    # Even a stray delivery of it (a reconciler push racing the cancel) is refused.
    app.dispatcher.push([Delivery(run_id, "demo.noop", "default", 120)])
    JobyardWorker(["default"], app=app).work(burst=True)
    assert run_of(app, run_id).status == "cancelled"
    with app.sessions() as session:
        assert session.scalars(select(Attempt).where(Attempt.run_id == run_id)).all() == []


def test_a_retrying_run_is_cancelled_and_a_final_one_refuses(app: Jobyard) -> None:
    run_id = enqueue("demo.fail", {"times": 3}, app=app)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    assert run_of(app, run_id).status == "retrying"
    assert cancel_run(app, run_id, by="alice") is RunStatus.CANCELLED
    assert app.redis.zscore("rq:scheduled:default", run_id) is None
    with pytest.raises(RunNotCancellable, match="it has already ended"):
        cancel_run(app, run_id, by="alice")
    with pytest.raises(RunNotFound):
        cancel_run(app, "nope", by="alice")


def test_a_cancelled_run_is_not_retried_and_stays_cancelled(app: Jobyard) -> None:
    run_id = enqueue("demo.noop", app=app)
    cancel_run(app, run_id, by="alice")
    with pytest.raises(RunNotRetryable, match="cancelled run cannot be retried; Run again starts a new run") as refused:
        retry_run(app, run_id, by="bob")
    assert refused.value.reason == "cancelled"
    JobyardWorker(["default"], app=app).work(burst=True)
    run = run_of(app, run_id)
    assert (run.status, run.series, run.retried_by) == ("cancelled", 1, None)
