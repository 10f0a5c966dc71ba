"""Poison in RQ's registries, beside the queues: members that are no job of anyone's (bytes that are not text,
ids RQ could not have written) planted in the sets RQ keeps per queue.

RQ decodes every member of a registry it cleans as UTF-8: one such member made every worker's maintenance raise,
and RQ's worker quits on that ("found an unhandled exception, quitting"), at its start and after each restart,
so no run of the queue ever ran again. The reconciler's removal of a dead worker's execution decoded them too:
each pass failed after settling one dead attempt, without pushing its retry."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rq import Queue

from core.app import Jobyard
from jobs.enqueue import enqueue
from tests.helpers import run_of
from workers.promoter import promote_due
from workers.reconciler import reconcile
from workers.recording import recorder_for
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases

GARBAGE = (b"\xff\xfe not utf-8", b"\xc3\x28:\xff", b"no id of RQ's", b"x:y:z")


def _registry_keys(app: Jobyard, name: str = "default") -> list[str]:
    queue = Queue(name, connection=app.redis)
    return [
        queue.started_job_registry.key, queue.finished_job_registry.key, queue.failed_job_registry.key,
        queue.deferred_job_registry.key, queue.canceled_job_registry.key, f"rq:ready:{name}",
    ]  # fmt: skip


def _plant(app: Jobyard) -> None:
    for key in _registry_keys(app):
        app.redis.zadd(key, dict.fromkeys(GARBAGE, 1))  # long expired: RQ's cleanup reads them all
    app.redis.rpush(Queue("default", connection=app.redis).intermediate_queue_key, *GARBAGE)


def test_garbage_in_rqs_registries_neither_stops_a_worker_nor_stays(app: Jobyard) -> None:
    _plant(app)
    run_id = enqueue("demo.noop", app=app)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    assert run_of(app, run_id).status == "completed"
    for key in _registry_keys(app):
        left = set(app.redis.zrange(key, 0, -1)) & set(GARBAGE)
        assert not left, (key, left)
    intermediate = Queue("default", connection=app.redis).intermediate_queue_key
    assert not set(app.redis.lrange(intermediate, 0, -1)) & set(GARBAGE)


def test_garbage_in_the_started_registry_does_not_stop_the_reconciler(app: Jobyard) -> None:
    app.redis.zadd(Queue("default", connection=app.redis).started_job_registry.key, dict.fromkeys(GARBAGE, 1))
    runs = [enqueue("demo.fail", {"times": 1}, app=app) for _ in range(2)]
    assert app.flush()
    recorder = recorder_for(app)
    for run_id in runs:
        app.redis.lrem("rq:queue:default", 0, run_id)
        assert recorder.claim(run_id, "never-registered") is not None  # a worker nobody hears from
    assert sorted(reconcile(app, grace_s=0).died) == sorted(runs)
    assert [run_of(app, run_id).status for run_id in runs] == ["retrying", "retrying"]
    # Both retries were pushed in the same pass.
    assert promote_due(app.dispatcher, ["default"], now=time.time() + 10) == 2


def test_metrics_scrape_past_planted_queues(app: Jobyard, web: Any, users: Any) -> None:
    """/metrics answered 500 for a member of RQ's set of queues that was not text, and reported Redis down (and
    no queue at all) for one queue key of the wrong type: one planted key blinded the monitoring."""
    from prometheus_client.parser import text_string_to_metric_families

    users.add("root", "admin")
    token = users.token("scraper", "admin", user="root")
    enqueue("demo.noop", app=app)
    assert app.flush()
    app.redis.sadd("rq:queues", b"rq:queue:\xff\xfe", "rq:queue:wrong", 'rq:queue:a"b\nc')
    app.redis.set("rq:queue:wrong", "not a list")
    response = web.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.status_code
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }
    assert samples[("jobyard_redis_up", ())] == 1
    assert samples[("jobyard_queue_length", (("queue", "default"),))] == 1
    assert samples[("jobyard_queue_length", (("queue", 'a"b\nc'),))] == 0
    assert not [labels for name, labels in samples if name == "jobyard_queue_length" and ("queue", "wrong") in labels]


def test_a_job_hash_whose_status_is_not_text_does_not_stop_the_reconciler(app: Jobyard) -> None:
    """The reconciler asks RQ's hash of each waiting run whether RQ still holds it: a status that was not text
    failed every pass there, so no lost run was ever pushed again."""
    lost, planted = enqueue("demo.noop", app=app), enqueue("demo.noop", app=app)
    assert app.flush()
    app.redis.delete("rq:queue:default", f"rq:job:{lost}")  # lost with Redis's queue and hash
    app.redis.hset(f"rq:job:{planted}", "status", b"\xff\xfe")
    assert sorted(reconcile(app, grace_s=0).repushed) == sorted([lost, planted])
    assert sorted(app.redis.lrange("rq:queue:default", 0, -1)) == sorted([lost.encode(), planted.encode()])
    assert app.redis.hget(f"rq:job:{planted}", "status") == b"queued"
