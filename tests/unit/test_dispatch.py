"""The Redis payload, checked against fakeredis: JSON only, and nothing but the run id."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import fakeredis

from jobs.dispatch import ENTRYPOINT, Delivery, Dispatcher


def test_payload_is_json_naming_only_the_entrypoint_and_run_id() -> None:
    connection = fakeredis.FakeRedis()
    dispatcher = Dispatcher(connection)
    dispatcher.push([Delivery("r1", "demo.noop", "default", 120)])
    raw = connection.hget("rq:job:r1", "data")
    assert raw is not None
    payload = json.loads(raw.decode())  # JSON, never a pickle
    assert payload[0] == ENTRYPOINT
    assert payload[2] == ["r1"]
    assert connection.lrange("rq:queue:default", 0, -1) == [b"r1"]
    assert dispatcher.held([("r1", "default"), ("r2", "default")]) == {"r1"}


def test_a_later_delivery_goes_to_the_scheduled_registry() -> None:
    connection = fakeredis.FakeRedis()
    dispatcher = Dispatcher(connection)
    due = datetime.now(UTC) + timedelta(hours=1)
    dispatcher.push([Delivery("r2", "demo.noop", "mail", 60, due)])
    assert connection.llen("rq:queue:mail") == 0
    assert connection.zscore("rq:scheduled:mail", "r2") == int(due.timestamp())
    assert dispatcher.held([("r2", "mail")]) == {"r2"}
    connection.zrem("rq:scheduled:mail", "r2")  # taken out by a promoter that then died
    assert dispatcher.held([("r2", "mail")]) == set()


def test_a_queued_job_missing_from_its_list_is_not_held_when_verified() -> None:
    connection = fakeredis.FakeRedis()
    dispatcher = Dispatcher(connection)
    dispatcher.push([Delivery("r3", "demo.noop", "default", 60)])
    connection.lpop("rq:queue:default")  # popped by a worker that died before starting it
    assert dispatcher.held([("r3", "default")]) == {"r3"}  # the status alone still says queued
    assert dispatcher.held([("r3", "default")], verify_queued={"r3"}) == set()


def test_the_fast_path_writes_a_job_rq_reads_as_its_own() -> None:
    from rq import Queue
    from rq.serializers import JSONSerializer

    ours, theirs = fakeredis.FakeRedis(), fakeredis.FakeRedis()
    Dispatcher(ours).push([Delivery("r4", "demo.noop", "default", 120)], fresh=True)
    reference_queue = Queue("default", connection=theirs, serializer=JSONSerializer)
    reference_queue.enqueue_call(
        ENTRYPOINT, args=["r4"], job_id="r4", timeout=120, result_ttl=500, failure_ttl=7 * 24 * 3600,
        description="demo.noop run r4",
    )  # fmt: skip
    mine = Queue("default", connection=ours, serializer=JSONSerializer).fetch_job("r4")
    reference = reference_queue.fetch_job("r4")
    assert mine is not None and reference is not None
    fields = ("func_name", "args", "kwargs", "origin", "description", "timeout", "result_ttl", "failure_ttl")
    assert {f: getattr(mine, f) for f in fields} == {f: getattr(reference, f) for f in fields}
    assert mine.get_status() == reference.get_status() == "queued"
    assert mine.enqueued_at is not None and mine.created_at is not None
    assert ours.lrange("rq:queue:default", 0, -1) == theirs.lrange("rq:queue:default", 0, -1)
    assert ours.smembers("rq:queues") == theirs.smembers("rq:queues")


def test_a_started_hash_beside_a_waiting_run_is_not_held() -> None:
    connection = fakeredis.FakeRedis()
    dispatcher = Dispatcher(connection)
    dispatcher.push([Delivery("r5", "demo.noop", "default", 60)])
    connection.lpop("rq:queue:default")
    connection.hset("rq:job:r5", "status", "started")  # RQ failed to record the attempt's failure
    assert dispatcher.held([("r5", "default")]) == set()
