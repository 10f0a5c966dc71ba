"""The scheduler process end to end: real seconds, real processes, real Redis and SQL."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from core.app import Jobyard
from core.db import utcnow
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.models import Attempt, Run, RunLog
from scheduler import schedules, triggers
from tests.conftest import JobyardProcess, WorkerProcesses, _running, wait_for
from tests.jobtypes import TICK_TYPES

pytestmark = pytest.mark.both_databases


def fired(app: Jobyard, type_name: str) -> list[tuple[datetime, Run]]:
    """(due time, run) of every scheduled run of a type, by due time, read from the idempotency keys."""
    with app.sessions() as session:
        runs = session.scalars(select(Run).where(Run.type == type_name, Run.idempotency_key.is_not(None)))
        out = [(datetime.fromisoformat(r.idempotency_key.split(":", 2)[2]), r) for r in runs if r.idempotency_key]
    return sorted(out, key=lambda pair: pair[0])


def assert_every_due_time_once(app: Jobyard, type_name: str, every_s: int) -> int:
    due_times = [due for due, _ in fired(app, type_name)]
    assert len(due_times) == len(set(due_times))
    gaps = {(later - earlier).total_seconds() for earlier, later in pairwise(due_times)}
    assert gaps <= {float(every_s)}, f"{type_name}: due times not contiguous: {due_times}"
    return len(due_times)


def test_interval_and_one_shot_fire_on_time(
    app: Jobyard, start_scheduler: Callable[[], JobyardProcess], start_workers: Callable[..., WorkerProcesses]
) -> None:
    schedules.set_schedule(app, "demo.noop", triggers.interval(1), by="test")
    soon = utcnow() + timedelta(seconds=2)
    schedules.set_schedule(app, "test.follower", triggers.at(soon), by="test")
    start_scheduler()
    start_workers(1)
    wait_for(lambda: len(fired(app, "demo.noop")) >= 4 and fired(app, "test.follower"), timeout=30,
             what="four interval runs and the one-shot")  # fmt: skip
    assert_every_due_time_once(app, "demo.noop", 1)
    [(one_shot_due, one_shot)] = fired(app, "test.follower")
    assert one_shot_due == soon.replace(microsecond=0)
    for due, run in [*fired(app, "demo.noop"), (one_shot_due, one_shot)]:
        assert run.created_at >= due  # never early
    wait_for(lambda: all(r.status == "completed" for _, r in fired(app, "demo.noop")), what="the runs to complete")
    assert schedules.get(app, "test.follower").next_run_at is None


def test_two_scheduler_processes_fire_each_due_time_exactly_once(
    app: Jobyard, start_scheduler: Callable[[], JobyardProcess]
) -> None:
    for type_name in TICK_TYPES:
        schedules.set_schedule(app, type_name, triggers.interval(1), by="test")
    start_scheduler()
    start_scheduler()
    wait_for(lambda: all(len(fired(app, t)) >= 5 for t in TICK_TYPES), timeout=60, what="75 due times")
    total = sum(assert_every_due_time_once(app, t, 1) for t in TICK_TYPES)
    assert total >= 75


def test_scheduler_killed_and_restarted_loses_and_doubles_nothing(app: Jobyard) -> None:
    # A 2 s misfire grace, so that several seconds down is a misfire rather than a catch-up.
    strict = Jobyard(replace(app.settings, schedule_misfire_grace_s=2.0), registry=app.registry)
    first = JobyardProcess(strict, "scheduler")
    second: JobyardProcess | None = None
    try:
        # Planned once the scheduler is up, so that its start-up is not itself a misfire.
        wait_for(lambda: app.redis.keys("rq:scheduler_instance:jobyard-*"), timeout=30, what="the scheduler to start")
        schedules.set_schedule(app, "demo.noop", triggers.interval(1), by="test")
        wait_for(lambda: len(fired(app, "demo.noop")) >= 3, timeout=30, what="three runs before the kill")
        first.kill()
        before = len(fired(app, "demo.noop"))
        time.sleep(4.5)  # the scenario itself: the scheduler stays down across four due times
        assert len(fired(app, "demo.noop")) == before
        second = JobyardProcess(strict, "scheduler")
        wait_for(lambda: len(fired(app, "demo.noop")) >= before + 3, timeout=40, what="runs after the restart")
    finally:
        for process in (first, second):
            if process is not None:
                process.stop()
                _running.remove(process)
        strict.close()
    pairs = fired(app, "demo.noop")
    due_times = [due for due, _ in pairs]
    assert len(due_times) == len(set(due_times))  # none doubled
    row = schedules.get(app, "demo.noop")
    assert row.misfires == 1 and row.last_misfire_at is not None
    # None lost: every due time between the first and the last either fired or is counted in the misfire.
    with app.sessions() as session:
        notes = session.scalars(select(RunLog.message).where(RunLog.run_id.in_([r.id for _, r in pairs])))
        skipped = sum(int(re.search(r"(\d+) later due time", n).group(1)) for n in notes if "misfire" in n)  # type: ignore[union-attr]
    span = int((due_times[-1] - due_times[0]).total_seconds()) + 1
    assert skipped >= 2 and len(due_times) + skipped == span, (due_times, skipped)


def test_an_exclusive_type_never_runs_twice_at_once_across_workers(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    ids = enqueue_many([EnqueueRequest("test.exclusive", {"seconds": 0.4})] * 5, app=app)
    start_workers(3)
    wait_for(lambda: all(status == "completed" for status in statuses(app, ids)), timeout=60,
             what="five exclusive runs to complete")  # fmt: skip
    with app.sessions() as session:
        spans = sorted(
            (a.started_at, a.finished_at)
            for a in session.scalars(select(Attempt).where(Attempt.run_id.in_(ids), Attempt.outcome == "completed"))
        )
    assert len(spans) == 5
    for (_, end), (start, _) in pairwise(spans):
        assert end is not None and end <= start, spans


def statuses(app: Jobyard, ids: list[str]) -> list[str]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(Run.status).where(Run.id.in_(ids))).scalars())
