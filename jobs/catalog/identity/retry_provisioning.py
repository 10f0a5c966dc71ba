"""Retry failed provisioning (seed 002): failed provisioning runs started again after growing gaps.

Owns no table. Reads ``runs``, ``run_attempts`` and ``provisioning_operations``; acts only through
`jobs.actions.retry_run`, which starts a new attempt series of a run that is still failed (a run retried
meanwhile, by hand or by another pass, is left alone).

A run of a provisioning type (or of Credential rotation) that failed in attempt series `s` is started again
once ``PROVISIONING_RETRY_GAPS_S[s - 1]`` has passed since it failed: 2 min, 5 min, 20 min, 2 h, 12 h, so
six series in all. It is not retried when its last attempt was rejected (PermanentFailure: bad input that
another try cannot fix), nor when its provisioning operation was done by another run since. A run that used
every series is reported once (an item result and one warning line), not retried: it needs a person.

Each run is one item of the per-item memory under the key ``<run id>:<series>``, so a series is handled
once per schedule even if a pass dies half-way, and a run retried and failed again is a new item. The type
is exclusive: two passes never work at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from core import defaults
from core.db import utcnow
from jobs.actions import RunNotFound, RunNotRetryable, retry_run
from jobs.catalog.identity.credentials import ROTATE_CREDENTIAL
from jobs.catalog.identity.identities import OPERATION_TYPES, PROVISIONING_TYPES
from jobs.catalog.identity.models import operations_table
from jobs.context import JobContext
from jobs.models import ProcessedItem, attempts_table, runs_table
from jobs.registry import Param, job_type
from jobs.status import RunStatus
from scheduler import triggers

GAPS_S = defaults.PROVISIONING_RETRY_GAPS_S
SERIES = 1 + len(GAPS_S)
RETRIED_TYPES = (*PROVISIONING_TYPES, ROTATE_CREDENTIAL)
OPERATION_OF = {job: operation for operation, job in OPERATION_TYPES.items()}
RETRIED_BY = "retry failed provisioning"
REPORT_LIMIT = 100  # run ids per list in the result; the counts are exact


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    type: str
    series: int
    failed_at: datetime
    params: Mapping[str, Any]
    last_outcome: str | None

    @property
    def key(self) -> str:
        return f"{self.run_id}:{self.series}"

    @property
    def exhausted(self) -> bool:
        return self.series > len(GAPS_S)

    @property
    def due_at(self) -> datetime:
        return self.failed_at + timedelta(seconds=GAPS_S[max(self.series, 1) - 1])

    def describe(self) -> str:
        identity = self.params.get("identity_id")
        return f"{self.run_id} ({self.type}, identity {identity})"


def _failed_runs(ctx: JobContext) -> list[FailedRun]:
    r, a = runs_table.c, attempts_table.c
    last_outcome = (
        select(a.outcome)
        .where(a.run_id == r.id, a.series == r.series)
        .order_by(a.number.desc())
        .limit(1)
        .correlate(runs_table)
        .scalar_subquery()
    )
    query = (
        select(r.id, r.type, r.series, func.coalesce(r.finished_at, r.dispatched_at), r.params, last_outcome)
        .where(r.type.in_(RETRIED_TYPES), r.status == RunStatus.FAILED)
        .order_by(r.id)
    )
    with ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [FailedRun(row[0], row[1], int(row[2]), row[3], row[4] or {}, row[5]) for row in rows]


def _done_elsewhere(ctx: JobContext, runs: list[FailedRun]) -> set[str]:
    """Runs whose provisioning operation another run has done since (a rotation has none)."""
    wanted = {
        run.run_id: (run.params.get("identity_id"), OPERATION_OF[run.type], run.params.get("target"))
        for run in runs
        if run.type in OPERATION_OF
    }
    if not wanted:
        return set()
    o = operations_table.c
    identity_ids = sorted({identity for identity, _, _ in wanted.values() if isinstance(identity, int)})
    done: set[tuple[Any, ...]] = set()
    with ctx.engine.connect() as conn:
        for start in range(0, len(identity_ids), 1000):
            part = identity_ids[start : start + 1000]
            query = select(o.identity_id, o.operation, o.target).where(o.identity_id.in_(part), o.done_at.is_not(None))
            done.update(tuple(row) for row in conn.execute(query))
    return {run_id for run_id, operation in wanted.items() if operation in done}


def _remembered(ctx: JobContext) -> set[str]:
    with ctx.engine.connect() as conn:
        query = select(ProcessedItem.key).where(ProcessedItem.scope == ctx.item_scope)
        return set(conn.execute(query).scalars())


def _retry(ctx: JobContext, run: FailedRun, retried: list[str]) -> str:
    if run.exhausted:
        return f"not retried: all {SERIES} attempt series failed; retry it by hand once the cause is fixed"
    if ctx.app is None:
        raise RuntimeError("retrying a run needs the worker's Jobyard")
    try:
        retry_run(ctx.app, run.run_id, by=RETRIED_BY)
    except RunNotRetryable as exc:  # retried by hand, or by an earlier pass, since it was read
        return f"left alone: it is {exc.status} now"
    except RunNotFound:
        return "left alone: the run no longer exists"
    retried.append(run.run_id)
    return f"retried: attempt series {run.series + 1} of {SERIES} started"


def _ids(runs: list[FailedRun]) -> list[str]:
    return [run.run_id for run in runs[:REPORT_LIMIT]]


@job_type(
    "identity.retry_failed_provisioning",
    title="Retry failed provisioning",
    description="Starts failed provisioning runs (Create domain user, Provision identity provider user, Credential "
    "rotation) again after growing gaps: 2 min, 5 min, 20 min, 2 h, then 12 h, six attempt series in all. Runs "
    "rejected for bad input, and runs whose operation was done since, are not retried; runs that used every "
    "series are reported once.",
    params=[Param("dry_run", bool, default=False, help="list what would be retried without retrying anything")],
    exclusive=True,
    default_schedule=triggers.interval(defaults.PROVISIONING_RETRY_INTERVAL_S),
)
def retry_failed_provisioning(ctx: JobContext, dry_run: bool) -> dict[str, Any]:
    now = utcnow()
    failed = _failed_runs(ctx)
    done = _done_elsewhere(ctx, failed)
    rejected = [run for run in failed if run.last_outcome == "rejected" and run.run_id not in done]
    done_runs = [run for run in failed if run.run_id in done]
    open_runs = [run for run in failed if run.last_outcome != "rejected" and run.run_id not in done]
    exhausted = [run for run in open_runs if run.exhausted]
    waiting = [run for run in open_runs if not run.exhausted and run.due_at > now]
    due = [run for run in open_runs if not run.exhausted and run.due_at <= now]
    remembered = _remembered(ctx)
    newly_exhausted = [run for run in exhausted if run.key not in remembered]
    if newly_exhausted:
        listed = ", ".join(run.describe() for run in newly_exhausted[:REPORT_LIMIT])
        more = len(newly_exhausted) - REPORT_LIMIT
        ctx.warning(
            f"{len(newly_exhausted)} failed provisioning run(s) used all {SERIES} attempt series and are not "
            f"retried: {listed}" + (f" and {more} more" if more > 0 else "")
        )
    ctx.info(
        f"{len(failed)} failed run(s): {len(due)} due for a retry, {len(waiting)} waiting for their gap, "
        f"{len(rejected)} rejected, {len(done_runs)} done by another run, {len(exhausted)} out of attempt series"
    )
    retried: list[str] = []
    counts = ctx.process_items(
        [*due, *exhausted],
        lambda run: _retry(ctx, run, retried),
        key=lambda run: run.key,
        dry_run=dry_run,
        continue_on_error=True,
    )
    return {
        "dry_run": dry_run,
        "failed": len(failed),
        "retried": retried[:REPORT_LIMIT],
        "retried_count": len(retried),
        "due": _ids(due),
        "waiting": len(waiting),
        "next_due_at": min(run.due_at for run in waiting).isoformat() if waiting else None,
        "rejected": _ids(rejected),
        "done_elsewhere": _ids(done_runs),
        "exhausted": _ids(exhausted),
        "exhausted_new": _ids(newly_exhausted),
        "items": counts,
    }
