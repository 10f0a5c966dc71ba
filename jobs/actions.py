"""Operator actions on existing runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update

from core.db import utcnow
from jobs.dispatch import Delivery
from jobs.enqueue import push_quietly
from jobs.models import run_logs_table
from jobs.models import runs_table as runs
from jobs.status import RETRYABLE_BY_HAND, RunStatus

if TYPE_CHECKING:
    from core.app import Jobyard


class RunNotFound(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r}")
        self.run_id = run_id


class RunNotRetryable(ValueError):
    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id} is {status}; only failed or cancelled runs can be retried")
        self.status = status


def retry_run(app: Jobyard, run_id: str, *, by: str) -> None:
    """Starts a new attempt series for a failed or cancelled run; earlier attempts stay in the history."""
    now = utcnow()
    with app.engine.begin() as conn:
        row = conn.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.status.in_(list(RETRYABLE_BY_HAND)))
            .values(
                status=RunStatus.PENDING,
                series=runs.c.series + 1,
                attempt_count=0,
                error=None,
                finished_at=None,
                next_attempt_at=None,
                result=None,
                dispatched_at=now,
                retried_by=by,
                cancel_requested_at=None,
                cancel_requested_by=None,
                retried_at=now,
                hmac=None,  # signed again once settled again (scheduler/sealing.py)
            )
            .returning(runs.c.type, runs.c.queue, runs.c.timeout_s, runs.c.series)
        ).first()
        if row is None:
            status = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None:
                raise RunNotFound(run_id)
            raise RunNotRetryable(run_id, status)
        conn.execute(
            insert(run_logs_table).values(
                run_id=run_id, at=now, level="info", message=f"retried by {by} (attempt series {row.series})"
            )
        )
    from jobs.cancel import flag_key

    app.redis.delete(flag_key(run_id))  # a new series must not see the old stop request
    push_quietly(app.dispatcher, [Delivery(run_id, row.type, row.queue, row.timeout_s)])
