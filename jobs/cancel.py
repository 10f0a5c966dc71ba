"""Cancelling runs (seed 004's "abort": final, cannot be undone; a later explicit retry starts anew).

A run that is not executing is cancelled at once. A running one is asked to stop: the Redis key
``jobyard:cancel:<run id>`` tells its job context (cheap to poll between items), and the supervisor of
its worker kills the process once ``cancel_grace_s`` has passed without the job stopping.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis import RedisError
from sqlalchemy import insert, select, update

from core.db import utcnow
from jobs.actions import RunNotFound
from jobs.models import run_logs_table
from jobs.models import runs_table as runs
from jobs.status import CANCELLABLE_AT_ONCE, FINAL, RunStatus

if TYPE_CHECKING:
    from redis import Redis

    from core.app import Jobyard

log = logging.getLogger("jobyard.cancel")
CANCEL_FLAG_TTL_S = 7 * 24 * 3600


class Cancelled(Exception):
    """Raised inside a job that noticed it was asked to stop."""


class RunNotCancellable(ValueError):
    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id} is {status}; it has already ended")
        self.status = status


def flag_key(run_id: str) -> str:
    return f"jobyard:cancel:{run_id}"


def is_requested(connection: Redis, run_id: str) -> bool:
    return bool(connection.exists(flag_key(run_id)))


def cancel_run(app: Jobyard, run_id: str, *, by: str) -> RunStatus:
    """Cancels a run; returns `cancelled`, or `running` when a running run was asked to stop."""
    now = utcnow()
    with app.engine.begin() as conn:
        stopped = conn.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.status.in_(list(CANCELLABLE_AT_ONCE)))
            .values(
                status=RunStatus.CANCELLED,
                finished_at=now,
                next_attempt_at=None,
                error=f"cancelled by {by}",
                cancel_requested_at=now,
                cancel_requested_by=by,
            )
            .returning(runs.c.queue)
        ).first()
        asked = None
        if stopped is None:
            asked = conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING, runs.c.cancel_requested_at.is_(None))
                .values(cancel_requested_at=now, cancel_requested_by=by)
                .returning(runs.c.queue)
            ).first()
        if stopped is None and asked is None:
            status = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None:
                raise RunNotFound(run_id)
            if RunStatus(status) in FINAL:
                raise RunNotCancellable(run_id, status)
            return RunStatus(status)  # a running run already asked to stop
        message = f"cancelled by {by}" if stopped is not None else f"asked to stop by {by}"
        conn.execute(insert(run_logs_table).values(run_id=run_id, at=now, level="warning", message=message))
    if stopped is not None:
        from jobs.dependencies import settle_dependents
        from jobs.notifications import notify_finished

        settle_dependents(app, run_id)
        notify_finished(app, run_id)
    try:
        if stopped is not None:
            _forget(app, stopped.queue, run_id)
            return RunStatus.CANCELLED
        app.redis.set(flag_key(run_id), by, ex=CANCEL_FLAG_TTL_S)
    except RedisError:
        # SQL already says so; the worker's claim refuses a cancelled run, and the supervisor reads SQL.
        log.warning("Redis unavailable while cancelling %s", run_id)
    return RunStatus.RUNNING


def _forget(app: Jobyard, queue_name: str, run_id: str) -> None:
    queue = app.dispatcher.queue(queue_name)
    with app.redis.pipeline(transaction=False) as pipe:
        pipe.lrem(queue.key, 0, run_id)
        pipe.zrem(queue.scheduled_job_registry.key, run_id)
        pipe.delete(f"rq:job:{run_id}")
        pipe.execute()
