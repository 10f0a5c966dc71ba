"""rq-scheduler drives the clock: one entry per active schedule, scored at its next execution.

Redis keys (rq-scheduler's own): ``rq:scheduler:scheduled_jobs`` (sorted set of entries by due time),
``rq:job:jobyard-schedule-<schedule id>`` (the entry, JSON-serialized), ``rq:scheduler_lock`` (held by
the one scheduler process polling at a time) and ``rq:scheduler_instance:<name>`` (its heartbeat).

An entry names `scheduler.firing.fire` with the schedule id; the scheduler process calls it itself
rather than pushing it to a worker queue, and the call creates a fresh run through the normal enqueue
path. After firing, the entry is moved to the schedule's next execution, or removed.

The sorted set is only trusted as far as SQL agrees: a member that is no entry of Jobyard's (another
id, bytes that are not text) is dropped with a log line, never fired, and an entry whose hash is
missing or is not the JSON Jobyard wrote is cleared and written again from its schedule in SQL.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
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


def schedule_id_of(member: bytes) -> int | None:
    """The schedule a sorted-set member is the entry of, or None for a member Jobyard never wrote."""
    try:
        name = member.decode()
    except UnicodeDecodeError:
        return None
    digits = name.removeprefix(ENTRY_PREFIX)
    if digits == name or not (digits.isascii() and digits.isdigit()):
        return None
    schedule_id = int(digits)
    # "jobyard-schedule-07" would otherwise stand for schedule 7 and never be removed by its name.
    return schedule_id if entry_id(schedule_id) == name else None


def payload_is_ours(raw: bytes | None, schedule_id: int) -> bool:
    """Whether an entry's `data` is what put() wrote: JSON naming the firing callable with its schedule.
    Read as JSON only, whatever it holds (a pickle stays bytes)."""
    if raw is None:
        return False
    try:
        data = zlib.decompress(raw)  # RQ compresses what it saves
    except zlib.error:
        data = raw
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(payload, list) and len(payload) == 4 and payload[0] == FIRE_CALLABLE and payload[2] == [schedule_id]
    )


@dataclass(frozen=True)
class Due:
    schedule_ids: list[int]
    # Entries of Jobyard's whose hash was missing or unreadable: removed, to be written again from SQL.
    cleared: list[int]


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
        return self._read_entries()[0]

    def _read_entries(self) -> tuple[dict[int, datetime], list[bytes]]:
        """The entries of Jobyard's, and the foreign members beside them."""
        raw = cast(
            list[tuple[bytes, float]],
            self.connection.zrange(self.scheduler.scheduled_jobs_key, 0, -1, withscores=True),
        )
        ours: dict[int, datetime] = {}
        foreign: list[bytes] = []
        for member, score in raw:
            schedule_id = schedule_id_of(member)
            if schedule_id is None:
                foreign.append(member)
            else:
                ours[schedule_id] = datetime.fromtimestamp(score, UTC)
        return ours, foreign

    def _drop_foreign(self, members: list[bytes]) -> None:
        if not members:
            return
        # Only the member goes: a hash under another id is not the scheduler's to judge (it may be a run's).
        self.connection.zrem(self.scheduler.scheduled_jobs_key, *members)
        for member in members:
            log.warning("dropped %r from rq-scheduler's entries: it is no schedule of Jobyard's", member[:200])

    def due(self, now: datetime) -> Due:
        members = cast(
            list[bytes], self.connection.zrangebyscore(self.scheduler.scheduled_jobs_key, 0, int(now.timestamp()))
        )
        ours = [s for s in map(schedule_id_of, members) if s is not None]
        self._drop_foreign([m for m in members if schedule_id_of(m) is None])
        if not ours:
            return Due([], [])
        with self.connection.pipeline(transaction=False) as pipe:
            for schedule_id in ours:
                pipe.hget(Job.key_for(entry_id(schedule_id)), "data")
            payloads = pipe.execute()
        cleared = [s for s, raw in zip(ours, payloads, strict=True) if not payload_is_ours(raw, s)]
        if cleared:
            # Its hash goes with it: put() writes with HSET, which would keep any field planted beside.
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.zrem(self.scheduler.scheduled_jobs_key, *(entry_id(s) for s in cleared))
                pipe.delete(*(Job.key_for(entry_id(s)) for s in cleared))
                pipe.execute()
            for schedule_id in cleared:
                log.warning("rq-scheduler's entry of schedule %d had no readable hash; cleared", schedule_id)
        return Due([s for s in ours if s not in cleared], cleared)

    def sync(self, schedules: list[ScheduleRow]) -> None:
        """Makes the entries match SQL: one per active schedule, at its next execution."""
        wanted = {s.id: s for s in schedules if s.active}
        held, foreign = self._read_entries()
        self._drop_foreign(foreign)
        for schedule_id in held.keys() - wanted.keys():
            self.drop(schedule_id)
        for schedule_id, schedule in wanted.items():
            assert schedule.next_run_at is not None
            if int(held.get(schedule_id, datetime.min.replace(tzinfo=UTC)).timestamp()) != int(
                schedule.next_run_at.timestamp()
            ):
                self.put(schedule)
