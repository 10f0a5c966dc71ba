"""Enqueue against a real database and a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue
from sqlalchemy import func, select, text

from core.app import Jobyard
from jobs import dispatch
from jobs.enqueue import EnqueueRequest, enqueue, enqueue_many
from jobs.models import Run
from jobs.params import InvalidJobRequest
from workers.reconciler import reconcile

pytestmark = pytest.mark.both_databases


def run_count(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Run)).scalar_one())


def queued_ids(app: Jobyard, queue: str = "default") -> list[str]:
    assert app.flush(), "the pusher did not drain"
    return [i.decode() for i in app.redis.lrange(f"rq:queue:{queue}", 0, -1)]


def test_enqueue_commits_the_row_then_pushes(app: Jobyard) -> None:
    run_id = enqueue("demo.sleep", {"seconds": 0.5}, triggered_by="svc:test", domain="acme", app=app)
    with app.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert (run.status, run.type, run.queue, run.params) == ("pending", "demo.sleep", "default", {"seconds": 0.5})
        assert (run.triggered_by, run.domain, run.max_attempts, run.timeout_s) == ("svc:test", "acme", 5, 120)
    assert queued_ids(app) == [run_id]


def test_bad_input_stores_nothing_and_names_every_field(app: Jobyard) -> None:
    with pytest.raises(InvalidJobRequest) as caught:
        enqueue_many(
            [
                EnqueueRequest("demo.noop"),
                EnqueueRequest("demo.fail", {"times": "two", "colour": 1}),
                EnqueueRequest("demo.nope"),
            ],
            app=app,
        )
    assert [str(e) for e in caught.value.errors] == [
        "[1].times: must be an integer, got str",
        "[1].colour: is not a parameter of this job type",
        "[2].type: unknown job type 'demo.nope'",
    ]
    assert run_count(app) == 0
    assert app.flush()
    assert app.redis.dbsize() == 0


def test_naive_time_is_refused(app: Jobyard) -> None:
    with pytest.raises(InvalidJobRequest, match="at: must carry a timezone"):
        enqueue("demo.noop", at=datetime(2030, 1, 1), app=app)
    assert run_count(app) == 0


def test_future_run_waits_in_the_scheduled_registry(app: Jobyard) -> None:
    due = datetime.now(UTC) + timedelta(hours=2)
    run_id = enqueue("demo.noop", at=due, app=app)
    with app.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.status == "scheduled" and run.scheduled_for == due
    assert queued_ids(app) == []
    assert app.redis.zscore("rq:scheduled:default", run_id) is not None  # flushed by queued_ids


def test_callers_rollback_leaves_no_row_and_nothing_in_redis(app: Jobyard) -> None:
    with app.sessions() as session:
        session.execute(text("SELECT 1"))
        run_id = enqueue("demo.noop", session=session, app=app)
        assert queued_ids(app) == []  # nothing leaves before the commit
        session.rollback()
    assert run_count(app) == 0
    assert app.flush()
    assert app.redis.dbsize() == 0
    with app.sessions() as session:
        session.commit()  # a later commit of the same session must not push the dropped run
    assert queued_ids(app) == []
    assert run_id


def test_callers_commit_pushes_after_the_commit(app: Jobyard) -> None:
    with app.sessions() as session:
        first = enqueue("demo.noop", session=session, app=app)
        second = enqueue("demo.sleep", {"seconds": 0.1}, session=session, app=app)
        assert queued_ids(app) == []
        session.commit()
    assert sorted(queued_ids(app)) == sorted([first, second])
    assert run_count(app) == 2


def test_a_run_accepted_while_redis_is_down_is_pushed_by_the_reconciler(
    app: Jobyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(app.dispatcher, "push", refuse)
    run_id = enqueue("demo.noop", app=app)  # accepted: the row is committed
    assert app.flush()
    monkeypatch.undo()
    assert queued_ids(app) == []
    report = reconcile(app, grace_s=0)
    assert report.repushed == [run_id]
    assert queued_ids(app) == [run_id]
    assert reconcile(app, grace_s=0).repushed == []  # held now, not pushed twice


def test_secret_parameters_never_reach_redis_or_sql_in_clear(app: Jobyard) -> None:
    run_id = enqueue("test.secretive", {"token": "hunter2-very-secret"}, app=app)
    assert app.flush()
    with app.engine.connect() as conn:
        stored = conn.execute(select(Run.params).where(Run.id == run_id)).scalar_one()
    assert "hunter2" not in str(stored)
    for key in app.redis.keys("*"):
        if app.redis.type(key) == b"hash":
            assert b"hunter2" not in b"".join(app.redis.hgetall(key).values())


def test_bulk_enqueue_batches_rows_and_pushes(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "PUSH_CHUNK", 7)
    ids = enqueue_many([EnqueueRequest("demo.noop")] * 50, app=app)
    assert len(set(ids)) == 50
    assert run_count(app) == 50
    assert app.flush()
    assert Queue("default", connection=app.redis).count == 50


def test_an_idempotency_key_makes_a_second_enqueue_return_the_first_run(app: Jobyard) -> None:
    first = enqueue("demo.noop", idempotency_key="order-42", app=app)
    again = enqueue("demo.noop", idempotency_key="order-42", app=app)
    mixed = enqueue_many(
        [
            EnqueueRequest("demo.noop", idempotency_key="order-42"),
            EnqueueRequest("demo.noop", idempotency_key="order-43"),
            EnqueueRequest("demo.noop", idempotency_key="order-43"),
            EnqueueRequest("demo.noop"),
        ],
        app=app,
    )
    assert again == first
    assert mixed[0] == first and mixed[1] == mixed[2] != first and mixed[3] not in {first, mixed[1]}
    assert run_count(app) == 3
    assert sorted(queued_ids(app)) == sorted([first, mixed[1], mixed[3]])  # each pushed once
