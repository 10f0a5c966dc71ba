"""Admission on a worker serving several queues, where RQ pops with BLPOP and keeps no intermediate
queue (tests/e2e/test_poison.py covers the single-queue worker process)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.app import Jobyard
from jobs.enqueue import EnqueueRequest, enqueue_many
from tests.helpers import run_of
from workers.models import RefusedJob
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases


def test_a_worker_of_two_queues_refuses_an_entry_that_names_no_job_and_goes_on(app: Jobyard) -> None:
    app.redis.rpush("rq:queue:mail", b"\xff not text", "a-run:exec")
    app.redis.hset(b"rq:job:\xff not text", "data", b"\x80")
    runs = enqueue_many([EnqueueRequest("demo.noop", queue="mail"), EnqueueRequest("demo.noop")], app=app)
    assert app.flush()
    JobyardWorker(["default", "mail"], app=app).work(burst=True)
    assert [run_of(app, run_id).status for run_id in runs] == ["completed", "completed"]
    with app.sessions() as session:
        refused = [
            (r.rq_job_id, r.queue, r.reason) for r in session.scalars(select(RefusedJob).order_by(RefusedJob.id))
        ]
    assert refused == [
        ("\\xff not text", "mail", "the queue entry names no job"),
        ("a-run:exec", "mail", "the queue entry names no job"),
    ]
    assert app.redis.keys("*not text*") == []
    assert app.redis.llen("rq:queue:mail") == 0
