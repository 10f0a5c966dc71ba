"""Schedules against real Redis and SQL, with the clock given to each call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from core.app import Jobyard
from core.db import utcnow
from jobs.enqueue import enqueue
from jobs.models import Run, RunLog
from jobs.params import InvalidJobRequest
from scheduler import schedules, triggers
from scheduler.clock import entry_id
from scheduler.firing import fire_due
from scheduler.models import Schedule
from scheduler.triggers import TriggerError
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases


def runs_of(app: Jobyard, type_name: str) -> list[Run]:
    with app.sessions() as session:
        return list(session.scalars(select(Run).where(Run.type == type_name).order_by(Run.created_at)))


def schedule_count(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Schedule)).scalar_one())


def entry_due(app: Jobyard, schedule_id: int) -> datetime | None:
    return app.clock.entries().get(schedule_id)


def test_setting_a_schedule_moves_its_next_execution_at_once(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "demo.sleep", triggers.interval(60), by="alice", params={"seconds": 0.1})
    assert row.mode == "scheduled" and row.changed_by == "alice" and row.params == {"seconds": 0.1}
    assert row.next_run_at is not None
    assert entry_due(app, row.id) == row.next_run_at
    edited = schedules.set_schedule(app, "demo.sleep", triggers.cron("0 3 * * *"), by="bob")
    assert edited.id == row.id and edited.next_run_at != row.next_run_at
    assert edited.next_run_at is not None and (edited.next_run_at.hour, edited.next_run_at.minute) == (3, 0)
    assert entry_due(app, row.id) == edited.next_run_at
    assert schedule_count(app) == 1


@pytest.mark.parametrize(
    ("type_name", "trigger", "params", "error", "message"),
    [
        ("demo.nope", triggers.interval(60), {}, InvalidJobRequest, "unknown job type 'demo.nope'"),
        ("demo.sleep", triggers.interval(60), {"seconds": "x"}, InvalidJobRequest, "seconds: must be a number"),
        ("demo.noop", triggers.after("demo.nope"), {}, TriggerError, "--after names unknown job type 'demo.nope'"),
        ("demo.noop", triggers.after("demo.noop"), {}, TriggerError, "cannot run after itself"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_stored(
    app: Jobyard, type_name: str, trigger: triggers.Trigger, params: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error) as caught:
        schedules.set_schedule(app, type_name, trigger, by="alice", params=params)
    assert message in str(caught.value)
    assert schedule_count(app) == 0
    assert app.clock.entries() == {}


def test_a_due_time_fires_exactly_once(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "demo.noop", triggers.interval(10), by="alice")
    assert row.next_run_at is not None
    due = row.next_run_at
    [firing] = fire_due(app, [row.id], now=due + timedelta(seconds=0.2))
    assert firing.due == due and firing.next_run_at == due + timedelta(seconds=10) and firing.missed == 0
    assert fire_due(app, [row.id], now=due + timedelta(seconds=0.3)) == []  # not due again yet
    # A replay of the same due time (say a restored backup of the schedule row) creates no second run.
    with app.engine.begin() as conn:
        conn.execute(Schedule.__table__.update().values(next_run_at=due))
    fire_due(app, [row.id], now=due + timedelta(seconds=0.4))
    [run] = runs_of(app, "demo.noop")
    assert run.id == firing.run_id and run.triggered_by == "schedule:demo.noop" and run.schedule_id == row.id
    assert run.idempotency_key == f"schedule:{row.id}:{due.isoformat()}"
    assert schedules.get(app, "demo.noop").last_run_id == run.id


def test_a_scheduler_down_across_due_times_fires_once_and_records_a_misfire(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "demo.noop", triggers.interval(10), by="alice")
    assert row.next_run_at is not None
    late = row.next_run_at + timedelta(seconds=35)  # due times at +0, +10, +20, +30 passed
    [firing] = fire_due(app, [row.id], now=late)
    assert firing.missed == 3
    assert firing.next_run_at == row.next_run_at + timedelta(seconds=40)  # back on the cadence
    assert len(runs_of(app, "demo.noop")) == 1
    after = schedules.get(app, "demo.noop")
    assert after.misfires == 1 and after.last_misfire_at == late
    with app.sessions() as session:
        [line] = session.scalars(select(RunLog.message).where(RunLog.run_id == firing.run_id))
    assert "misfire" in line and "3 later due time(s) skipped" in line


def test_a_one_shot_in_the_past_is_due_at_once_and_then_done(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "demo.noop", triggers.at(utcnow() - timedelta(days=1)), by="alice")
    assert row.next_run_at is not None and row.next_run_at <= utcnow()
    [firing] = fire_due(app, [row.id])
    assert firing.next_run_at is None
    assert schedules.get(app, "demo.noop").next_run_at is None


def test_run_now_uses_the_schedule_parameters_and_leaves_its_next_execution(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "demo.sleep", triggers.interval(3600), by="alice", params={"seconds": 0.5})
    run_id = schedules.run_now(app, "demo.sleep", by="bob")
    other = schedules.run_now(app, "demo.sleep", by="bob", params={"seconds": "0.1"}, from_text=True)
    with app.sessions() as session:
        first, second = session.get(Run, run_id), session.get(Run, other)
        assert first is not None and second is not None
        assert (first.params, first.triggered_by, first.schedule_id) == ({"seconds": 0.5}, "bob", row.id)
        assert second.params == {"seconds": 0.1}
    assert schedules.get(app, "demo.sleep").next_run_at == row.next_run_at
    assert entry_due(app, row.id) == row.next_run_at
    with pytest.raises(InvalidJobRequest, match="unknown job type"):
        schedules.run_now(app, "demo.nope", by="bob")


def test_disabling_stops_it_and_enabling_brings_it_back(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "demo.noop", triggers.interval(60), by="alice")
    off = schedules.set_mode(app, "demo.noop", enabled=False, by="bob")
    assert (off.mode, off.next_run_at) == ("disabled", None)
    assert entry_due(app, row.id) is None
    assert fire_due(app, [row.id], now=utcnow() + timedelta(hours=1)) == []
    on = schedules.set_mode(app, "demo.noop", enabled=True, by="carol")
    assert on.mode == "scheduled" and on.next_run_at is not None and on.changed_by == "carol"
    assert entry_due(app, row.id) == on.next_run_at


def test_defaults_are_created_once_and_never_overwrite_an_operator(app: Jobyard) -> None:
    with app.engine.begin() as conn:  # a schedule left by a type that is no longer declared
        now = utcnow()
        conn.execute(
            insert(Schedule.__table__).values(
                type="test.gone", params={}, trigger_kind="interval", trigger_spec={"seconds": 60,
                "anchor": now.isoformat()}, timezone="UTC", mode="scheduled", next_run_at=now, created_at=now,
                changed_at=now, changed_by="x", misfires=0,
            )
        )  # fmt: skip
    created, removed = schedules.ensure_defaults(app)
    assert "test.nightly" in created and removed == ["test.gone"]
    nightly = schedules.get(app, "test.nightly")
    assert nightly.mode == "automatic" and nightly.trigger == triggers.cron("0 2 * * *", "Europe/Paris")
    schedules.set_schedule(app, "test.nightly", triggers.interval(120), by="alice")
    assert schedules.ensure_defaults(app) == ([], [])
    kept = schedules.get(app, "test.nightly")
    assert kept.mode == "scheduled" and kept.trigger.kind == "interval"
    with pytest.raises(schedules.ScheduleNotFound):
        schedules.get(app, "test.gone")


def test_dependent_schedule_runs_after_success_only(app: Jobyard) -> None:
    schedules.set_schedule(app, "test.follower", triggers.after("demo.fail"), by="alice")
    succeeded = enqueue("demo.fail", {"times": 0}, app=app)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    [follower] = runs_of(app, "test.follower")
    assert follower.idempotency_key is not None and follower.idempotency_key.endswith(f":after:{succeeded}")
    failing = enqueue("demo.fail", {"times": 5}, app=app)
    with app.engine.begin() as conn:  # a failure: one attempt allowed, so it fails at once
        conn.execute(Run.__table__.update().where(Run.__table__.c.id == failing).values(max_attempts=1))
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    assert len(runs_of(app, "test.follower")) == 1


def test_an_exclusive_type_waits_instead_of_running_twice(app: Jobyard) -> None:
    from workers.recording import recorder_for

    first = enqueue("test.exclusive", {"seconds": 0}, app=app)
    second = enqueue("test.exclusive", {"seconds": 0}, app=app)
    recorder = recorder_for(app)
    claim = recorder.claim(first, "w1")
    assert claim is not None
    assert recorder.claim(second, "w2") is None
    waiting = runs_of(app, "test.exclusive")[1]
    assert (waiting.id, waiting.status, waiting.attempt_count) == (second, "waiting", 0)
    outcome = recorder.complete(claim, None)
    assert [d.run_id for d in outcome.woken] == [second]
    assert runs_of(app, "test.exclusive")[1].status == "pending"
    assert recorder.claim(second, "w2") is not None


def test_entries_are_json_not_pickle(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "demo.noop", triggers.interval(60), by="alice")
    raw = app.redis.hget(f"rq:job:{entry_id(row.id)}", "data")
    assert raw is not None
    import json
    import zlib

    assert json.loads(zlib.decompress(raw))[0] == "scheduler.firing.fire"
    assert datetime.now(UTC) < entry_due(app, row.id) + timedelta(seconds=61)  # type: ignore[operator]


def test_a_late_due_time_within_the_grace_catches_up_instead_of_skipping(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "demo.noop", triggers.interval(3), by="alice")
    assert row.next_run_at is not None and app.settings.schedule_misfire_grace_s == 10
    now = row.next_run_at + timedelta(seconds=7)  # due times at +0, +3, +6 have passed
    due_times = []
    for _ in range(3):
        [firing] = fire_due(app, [row.id], now=now)
        due_times.append(firing.due)
    assert due_times == [row.next_run_at + timedelta(seconds=s) for s in (0, 3, 6)]
    assert fire_due(app, [row.id], now=now) == []
    assert schedules.get(app, "demo.noop").misfires == 0


def test_secret_parameters_of_a_schedule_are_sealed_and_masked(app: Jobyard) -> None:
    row = schedules.set_schedule(app, "test.secretive", triggers.interval(60), by="alice", params={"token": "hunter2"})
    with app.engine.connect() as conn:
        stored = conn.execute(select(Schedule.params).where(Schedule.id == row.id)).scalar_one()
    assert "hunter2" not in str(stored)
    assert row.as_dict()["params"] == {"token": "•••"}
    assert row.next_run_at is not None
    [firing] = fire_due(app, [row.id], now=row.next_run_at)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    with app.sessions() as session:
        run = session.get(Run, firing.run_id)
        assert run is not None and run.status == "completed" and run.result == {"token_length": 7}
        assert "hunter2" not in str(run.params)


def test_one_unusable_schedule_does_not_hold_up_the_others(app: Jobyard) -> None:
    good = schedules.set_schedule(app, "demo.noop", triggers.interval(60), by="alice")
    bad = schedules.set_schedule(app, "demo.sleep", triggers.interval(60), by="alice", params={"seconds": 1})
    with app.engine.begin() as conn:  # a parameter renamed since the schedule was saved
        conn.execute(Schedule.__table__.update().where(Schedule.id == bad.id).values(params={"secs": 1}))
    now = max(good.next_run_at, bad.next_run_at)  # type: ignore[type-var]
    firings = fire_due(app, [good.id, bad.id], now=now)
    assert [f.type for f in firings] == ["demo.noop"]
    assert schedules.get(app, "demo.sleep").next_run_at > now  # type: ignore[operator]
    assert runs_of(app, "demo.sleep") == []


def test_a_restart_does_not_re_time_a_default_interval(app: Jobyard) -> None:
    schedules.ensure_defaults(app)
    first = schedules.get(app, "test.hourly")
    schedules.ensure_defaults(app)  # as at every scheduler start
    again = schedules.get(app, "test.hourly")
    assert (again.mode, again.next_run_at) == ("automatic", first.next_run_at)
    off = schedules.set_mode(app, "test.hourly", enabled=False, by="bob")
    assert schedules.set_mode(app, "test.hourly", enabled=True, by="bob").mode == "automatic" != off.mode
