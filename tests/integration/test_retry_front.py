"""Every path that brings a retrying run back puts it at the head of its queue (real Redis and SQL).

The worker's own path is covered end to end in tests/e2e/test_retry_priority.py; these are the
promoter's and the reconciler's (after Redis lost the run, or after its worker died)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import cast

import pytest

from core.app import Jobyard
from core.db import utcnow
from jobs.dispatch import Delivery
from jobs.enqueue import EnqueueRequest, enqueue, enqueue_many
from jobs.retry import RetryPolicy
from tests.helpers import run_of
from workers.promoter import promote_due
from workers.reconciler import reconcile
from workers.recording import Failure, recorder_for

QUEUE = "rq:queue:default"


pytestmark = pytest.mark.both_databases


def queued(app: Jobyard) -> list[str]:
    return [entry.decode() for entry in cast(list[bytes], app.redis.lrange(QUEUE, 0, -1))]


def retrying_run(app: Jobyard, backoff_s: float) -> str:
    """A demo.fail run whose first attempt failed (its worker took it off the queue) and that now waits."""
    run_id = enqueue("demo.fail", {"times": 1}, app=app)
    assert app.flush()
    app.redis.lrem(QUEUE, 0, run_id)
    recorder = recorder_for(app)
    claim = recorder.claim(run_id, "w1")
    assert claim is not None
    failure = Failure("failed", "DemoFailure", "planned")
    assert recorder.fail(claim, failure, RetryPolicy(backoff_base_s=backoff_s)) is not None
    return run_id


def backlog(app: Jobyard, count: int = 5) -> list[str]:
    ids = enqueue_many([EnqueueRequest("demo.noop")] * count, app=app)
    assert app.flush()
    return ids


def test_the_promoter_puts_due_retries_first_in_due_order_and_planned_runs_last(app: Jobyard) -> None:
    fresh = backlog(app)
    now = utcnow()
    planned = Delivery("planned", "demo.noop", "default", 60, now + timedelta(seconds=1))
    early = Delivery("early", "demo.noop", "default", 60, now + timedelta(seconds=1), front=True)
    late = Delivery("late", "demo.noop", "default", 60, now + timedelta(seconds=3), front=True)
    app.dispatcher.push([late, planned, early])
    assert promote_due(app.dispatcher, ["default"], now=time.time() + 10) == 3
    assert queued(app) == ["early", "late", *fresh, "planned"]


def test_a_retry_lost_with_redis_and_already_due_goes_first(app: Jobyard) -> None:
    run_id = retrying_run(app, backoff_s=0.0)
    app.redis.flushdb()  # Redis restarted empty
    fresh = backlog(app)
    report = reconcile(app, grace_s=0)
    assert report.repushed == [run_id]
    assert queued(app) == [run_id, *fresh]


def test_a_retry_lost_with_redis_and_not_yet_due_goes_first_once_due(app: Jobyard) -> None:
    run_id = retrying_run(app, backoff_s=60.0)
    app.redis.flushdb()
    fresh = backlog(app)
    assert reconcile(app, grace_s=0).repushed == [run_id]
    assert queued(app) == fresh
    assert app.redis.zscore("rq:scheduled:default", run_id) is not None
    assert promote_due(app.dispatcher, ["default"], now=time.time() + 120) == 1
    assert queued(app) == [run_id, *fresh]


def test_a_run_whose_worker_died_retries_first(app: Jobyard) -> None:
    run_id = enqueue("demo.fail", {"times": 1}, app=app)
    assert app.flush()
    app.redis.lrem(QUEUE, 0, run_id)
    assert recorder_for(app).claim(run_id, "never-registered") is not None  # a worker nobody hears from
    fresh = backlog(app)
    assert reconcile(app, grace_s=0).died == [run_id]
    assert run_of(app, run_id).status == "retrying"
    assert promote_due(app.dispatcher, ["default"], now=time.time() + 10) == 1
    assert queued(app) == [run_id, *fresh]


def test_garbage_in_the_scheduled_registry_does_not_stop_the_retries_behind_it(app: Jobyard) -> None:
    registry = "rq:scheduled:default"
    app.redis.zadd(registry, {b"\xff\xfe not utf-8": 1, b"run:exec": 2, b"unreadable": 3, b"elsewhere": 4})
    app.redis.hset("rq:job:unreadable", mapping={"data": b"\x80\x05 not json", "status": "no status of RQ's"})
    app.redis.hset("rq:job:elsewhere", mapping={"data": b"[]", "origin": "another", "status": "scheduled"})
    app.dispatcher.push([Delivery("retry", "demo.noop", "default", 60, utcnow(), front=True)])
    assert promote_due(app.dispatcher, ["default"], now=time.time() + 10) == 1
    assert queued(app) == ["retry"]
    assert app.redis.zcard(registry) == 0
    assert not app.redis.exists("rq:job:unreadable")
