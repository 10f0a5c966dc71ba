"""Firing schedules: each due time becomes one fresh run through the normal enqueue path.

A firing is keyed (schedule id, due time) twice over: the schedule's `next_run_at` only moves with a
conditional update from that due time, and the run carries the idempotency key
``schedule:<id>:<due time>``. So a second scheduler process, a replay or a restart cannot fire the same
due time twice. A due time found later than the misfire grace (the scheduler was down) fires once for
every due time it missed, and the misfire is recorded on the schedule and in the run's log; within the
grace each due time fires, late, so a short hiccup loses nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from core.db import utcnow
from core.hotsql import Runner
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.models import run_logs_table as run_logs
from jobs.params import InvalidJobRequest, unseal_secrets, validate_params
from scheduler.models import schedules_table as schedules
from scheduler.triggers import Trigger

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.scheduler")
MAX_MISSED_COUNTED = 10_000
_MOVE = """
UPDATE schedules SET next_run_at = :next, last_fired_at = :now, misfires = misfires + :misfired,
                     last_misfire_at = COALESCE(:misfired_at, last_misfire_at)
WHERE id = :id AND next_run_at = :due
"""
_LAST_RUN = "UPDATE schedules SET last_run_id = :run_id WHERE id = :id"


@dataclass(frozen=True)
class Firing:
    schedule_id: int
    type: str
    due: datetime
    run_id: str
    next_run_at: datetime | None
    missed: int  # due times skipped because the scheduler was down


def _missed(trigger: Trigger, due: datetime, now: datetime) -> int:
    count, instant = 0, due
    while count < MAX_MISSED_COUNTED:
        nxt = trigger.next_after(instant)
        if nxt is None or nxt > now:
            return count
        count, instant = count + 1, nxt
    return count


def _request(app: Jobyard, schedule: Any, occasion: str) -> EnqueueRequest | None:
    """The run a schedule starts; `occasion` (a due time, or the run it follows) keys it. None, logged,
    when the stored parameters no longer fit the type: one bad schedule must not hold up the others."""
    declared = app.registry.get(schedule.type)
    if declared is None:
        return None  # removed by ensure_defaults at the next start
    try:
        params = validate_params(
            declared,
            unseal_secrets(schedule.params, app.settings.secret_key),
            dirs=app.settings.server_dirs,
        )
    except (InvalidJobRequest, ValueError) as exc:
        log.error("schedule of %s cannot start a run: %s", schedule.type, exc)
        return None
    return EnqueueRequest(
        schedule.type,
        params,
        triggered_by=f"schedule:{schedule.type}",
        schedule_id=schedule.id,
        idempotency_key=f"schedule:{schedule.id}:{occasion}",
    )


def fire_due(app: Jobyard, schedule_ids: list[int], now: datetime | None = None) -> list[Firing]:
    """Fires the given schedules whose next execution has come; returns what was fired."""
    now = now or utcnow()
    if not schedule_ids:
        return []
    firings: list[Firing] = []
    with app.sessions() as session:
        rows = session.execute(
            select(schedules).where(
                schedules.c.id.in_(schedule_ids),
                schedules.c.mode != "disabled",
                schedules.c.next_run_at <= now,
            )
        ).all()
        requests, planned = [], []
        # Fixed SQL on the session's own cursor: SQLAlchemy building two statements per schedule cost
        # more than the database (see core/hotsql.py).
        sql, hot = Runner.joining(session.connection()), app.hot
        for row in rows:
            trigger = Trigger(row.trigger_kind, row.trigger_spec, row.timezone)
            due = row.next_run_at
            misfired = (now - due).total_seconds() > app.settings.schedule_misfire_grace_s
            # Within the grace every due time fires (catching up); past it the missed ones fold into this one.
            missed = _missed(trigger, due, now) if misfired else 0
            next_run_at = trigger.next_after(now if misfired else due)
            moved = sql(
                _MOVE,
                {
                    "id": row.id,
                    "due": hot.ts(due),
                    "next": hot.ts(next_run_at),
                    "now": hot.ts(now),
                    "misfired": 1 if misfired else 0,
                    "misfired_at": hot.ts(now) if misfired else None,
                },
            )
            if not moved:
                continue  # fired by another scheduler meanwhile
            request = _request(app, row, due.isoformat())
            if request is None:
                continue  # its next execution moved on all the same
            requests.append(request)
            planned.append((row, due, next_run_at, missed if misfired else -1))
        if not requests:
            session.commit()  # next executions moved past unusable schedules
            return []
        run_ids = enqueue_many(requests, session=session, app=app)
        sql(_LAST_RUN, [{"id": row.id, "run_id": run_id} for (row, *_), run_id in zip(planned, run_ids, strict=True)])
        for (row, due, next_run_at, missed), run_id in zip(planned, run_ids, strict=True):
            if missed >= 0:
                session.execute(
                    insert(run_logs).values(
                        run_id=run_id, at=now, level="warning",
                        message=f"misfire: due at {due.isoformat()}, fired {(now - due).total_seconds():.0f}s late;"
                        f" {missed} later due time(s) skipped",
                    )
                )  # fmt: skip
                log.warning("schedule of %s misfired: due %s, %d due time(s) skipped", row.type, due, missed)
            firings.append(Firing(row.id, row.type, due, run_id, next_run_at, max(missed, 0)))
        session.commit()
    return firings


def followed_types(app: Jobyard) -> frozenset[str]:
    """Job types that some active dependent schedule follows."""
    with app.engine.connect() as conn:
        specs = conn.execute(
            select(schedules.c.trigger_spec).where(schedules.c.trigger_kind == "after", schedules.c.mode != "disabled")
        ).scalars()
        return frozenset(spec.get("type") for spec in specs)


def fire_dependents(app: Jobyard, completed_type: str, run_id: str) -> list[str]:
    """Starts the runs of schedules that follow `completed_type` ("after X completes successfully")."""
    now = utcnow()
    with app.sessions() as session:
        rows = [
            r
            for r in session.execute(
                select(schedules).where(schedules.c.trigger_kind == "after", schedules.c.mode != "disabled")
            )
            if r.trigger_spec.get("type") == completed_type
        ]
        planned = [(r, req) for r in rows if (req := _request(app, r, f"after:{run_id}")) is not None]
        if not planned:
            return []
        rows, requests = [r for r, _ in planned], [req for _, req in planned]
        run_ids = enqueue_many(requests, session=session, app=app)
        for row, new_run in zip(rows, run_ids, strict=True):
            session.execute(
                update(schedules).where(schedules.c.id == row.id).values(last_run_id=new_run, last_fired_at=now)
            )
        session.commit()
    return run_ids


def fire(schedule_id: int) -> None:
    """The callable rq-scheduler's entries name; the scheduler process invokes it in-process."""
    from core.app import Jobyard

    fire_due(Jobyard.current(), [schedule_id])
