"""Operator actions on existing runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from sqlalchemy import Connection, Select, Table, insert, select, update

from core.db import utcnow
from jobs.dispatch import Delivery
from jobs.enqueue import push_quietly
from jobs.models import RunDependency, run_logs_table
from jobs.models import runs_table as runs
from jobs.status import RETRYABLE_BY_HAND, RunStatus

if TYPE_CHECKING:
    from core.app import Jobyard

dependencies = cast(Table, RunDependency.__table__)
parents = runs.alias("parent")
COMPLETED = (RunStatus.COMPLETED.value, RunStatus.COMPLETED_WITH_WARNINGS.value)


class RunNotFound(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r}")
        self.run_id = run_id


class RunNotRetryable(ValueError):
    """Why a run cannot be retried. `reason` is its status, or `waiting_on_dependency` when a run it
    depends on has not completed: a retry would run it before the work it needs."""

    def __init__(self, run_id: str, status: str, *, unmet: tuple[str, str] | None = None) -> None:
        self.run_id = run_id
        self.status = status
        self.unmet = unmet
        self.reason = "waiting_on_dependency" if unmet is not None else status
        super().__init__(self._message())

    def _message(self) -> str:
        if self.unmet is not None:
            parent, parent_status = self.unmet
            waiting = parent_status.replace("_", " ")
            return (
                f"run {self.run_id} depends on run {parent}, which is {waiting}, not completed; "
                "only failed runs whose dependencies have completed can be retried"
            )
        if self.status == RunStatus.CANCELLED:
            # Seed 004: an abort cannot be undone. The operator who wants the work done again starts a new run.
            return (
                f"run {self.run_id} is cancelled, and a cancelled run cannot be retried; "
                "Run again starts a new run with the same parameters"
            )
        return f"run {self.run_id} is {self.status.replace('_', ' ')}; only failed runs can be retried"


def _unmet_dependency(run_id: str) -> Select[tuple[str, str]]:
    """A run `run_id` depends on that has not completed (a dependency whose run is gone counts as met, as
    in jobs/dependencies.py)."""
    return (
        select(parents.c.id, parents.c.status)
        .select_from(dependencies.join(parents, parents.c.id == dependencies.c.depends_on_id))
        .where(dependencies.c.run_id == run_id, parents.c.status.not_in(COMPLETED))
    )


def _refusal(conn: Connection, run_id: str) -> Exception:
    status = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
    if status is None:
        return RunNotFound(run_id)
    unmet = conn.execute(_unmet_dependency(run_id).order_by(parents.c.id).limit(1)).first()
    if unmet is not None and status in (RunStatus.FAILED, RunStatus.WAITING):
        return RunNotRetryable(run_id, status, unmet=(unmet.id, unmet.status))
    return RunNotRetryable(run_id, status)


def retry_run(app: Jobyard, run_id: str, *, by: str) -> None:
    """Starts a new attempt series for a failed run; earlier attempts stay in the history. A cancelled run
    is not retried (it is started again as a new run), nor a run whose dependencies have not completed."""
    now = utcnow()
    with app.engine.begin() as conn:
        row = conn.execute(
            update(runs)
            .where(
                runs.c.id == run_id,
                runs.c.status.in_(list(RETRYABLE_BY_HAND)),
                ~_unmet_dependency(run_id).exists(),
            )
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
            raise _refusal(conn, run_id)
        conn.execute(
            insert(run_logs_table).values(
                run_id=run_id, at=now, level="info", message=f"retried by {by} (attempt series {row.series})"
            )
        )
    from jobs.cancel import flag_key

    app.redis.delete(flag_key(run_id))  # a new series must not see the old stop request
    push_quietly(app.dispatcher, [Delivery(run_id, row.type, row.queue, row.timeout_s)])
