"""rq-scheduler drives the clock: one entry per active schedule, scored at its next execution.

Redis keys (rq-scheduler's own): ``rq:scheduler:scheduled_jobs`` (sorted set of entries by due time),
``rq:job:jobyard-schedule-<schedule id>`` (the entry, JSON-serialized), ``rq:scheduler_lock`` (held by
the one scheduler process polling at a time) and ``rq:scheduler_instance:<name>`` (its heartbeat).

An entry names `scheduler.firing.fire` with the schedule id; the scheduler process calls it itself
rather than pushing it to a worker queue, and the call creates a fresh run through the normal enqueue
path. After firing, the entry is moved to the schedule's next execution, or removed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from redis import Redis
from rq.job import Job
from rq.serializers import JSONSerializer
from rq_scheduler import Scheduler

from core import defaults

if TYPE_CHECKING:
    from scheduler.schedules import ScheduleRow

log = logging.getLogger("jobyard.scheduler")
ENTRY_PREFIX = "jobyard-schedule-"
FIRE_CALLABLE = "scheduler.firing.fire"


class JSONJob(Job):
    """rq-scheduler creates and fetches entries through this class, so they are JSON, never pickle."""

    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer: Any = None) -> None:
        super().__init__(id, connection=connection, serializer=serializer or JSONSerializer)


def entry_id(schedule_id: int) -> str:
    return f"{ENTRY_PREFIX}{schedule_id}"


class Clock:
    """Writes and reads rq-scheduler's entries; any process may call it (CLI, web, scheduler)."""

    def __init__(self, connection: Redis) -> None:
        self.scheduler = Scheduler(
            connection=connection, interval=defaults.SCHEDULER_POLL_INTERVAL_S, job_class=JSONJob
        )
        self.connection = connection

    def put(self, schedule: ScheduleRow) -> None:
        if not schedule.active or schedule.next_run_at is None:
            self.drop(schedule.id)
            return
        self.scheduler.enqueue_at(
            schedule.next_run_at,  # rq-scheduler scores it with utctimetuple(): aware datetimes are fine
            FIRE_CALLABLE,
            schedule.id,
            job_id=entry_id(schedule.id),
            job_description=f"fire the schedule of {schedule.type}",
        )

    def move(self, due_by_schedule: dict[int, datetime]) -> None:
        """Re-scores existing entries (after a firing) in one round trip."""
        if due_by_schedule:
            self.connection.zadd(
                self.scheduler.scheduled_jobs_key,
                {entry_id(s): int(due.timestamp()) for s, due in due_by_schedule.items()},
            )

    def drop(self, schedule_id: int) -> None:
        self.drop_many([schedule_id])

    def drop_many(self, schedule_ids: list[int]) -> None:
        """Removes entries (one-shots that fired, schedules disabled or gone) in one round trip."""
        if not schedule_ids:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.zrem(self.scheduler.scheduled_jobs_key, *(entry_id(s) for s in schedule_ids))
            pipe.delete(*(Job.key_for(entry_id(s)) for s in schedule_ids))
            pipe.execute()

    def entries(self) -> dict[int, datetime]:
        """Schedule id → due time of every entry rq-scheduler holds."""
        raw = cast(
            list[tuple[bytes, float]],
            self.connection.zrange(self.scheduler.scheduled_jobs_key, 0, -1, withscores=True),
        )
        out: dict[int, datetime] = {}
        for member, score in raw:
            name = member.decode()
            if name.startswith(ENTRY_PREFIX):
                out[int(name.removeprefix(ENTRY_PREFIX))] = datetime.fromtimestamp(score, UTC)
        return out

    def due(self, now: datetime) -> list[int]:
        members = cast(
            list[bytes], self.connection.zrangebyscore(self.scheduler.scheduled_jobs_key, 0, int(now.timestamp()))
        )
        return [int(m.decode().removeprefix(ENTRY_PREFIX)) for m in members if m.decode().startswith(ENTRY_PREFIX)]

    def sync(self, schedules: list[ScheduleRow]) -> None:
        """Makes the entries match SQL: one per active schedule, at its next execution."""
        wanted = {s.id: s for s in schedules if s.active}
        held = self.entries()
        for schedule_id in held.keys() - wanted.keys():
            self.drop(schedule_id)
        for schedule_id, schedule in wanted.items():
            assert schedule.next_run_at is not None
            if int(held.get(schedule_id, datetime.min.replace(tzinfo=UTC)).timestamp()) != int(
                schedule.next_run_at.timestamp()
            ):
                self.put(schedule)
