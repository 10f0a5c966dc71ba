"""Read-side views of the record, shared by the CLI (and later the dashboard and API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, func, select

from core.crypto import masked
from jobs.models import RunItem
from jobs.models import attempts_table as attempts
from jobs.models import run_logs_table as run_logs
from jobs.models import runs_table as runs

run_items = cast(Table, RunItem.__table__)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _run_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "queue": row.queue,
        "attempts": row.attempt_count,
        "max_attempts": row.max_attempts,
        "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "next_attempt_at": _iso(row.next_attempt_at),
        "triggered_by": row.triggered_by,
        "error": row.error,
    }


def list_runs(
    engine: Engine, *, status: str | None = None, type: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    query = select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    if status:
        query = query.where(runs.c.status == status)
    if type:
        query = query.where(runs.c.type == type)
    with engine.connect() as conn:
        return [_run_summary(r) for r in conn.execute(query)]


def run_detail(engine: Engine, run_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            return None
        attempt_rows = conn.execute(
            select(attempts).where(attempts.c.run_id == run_id).order_by(attempts.c.series, attempts.c.number)
        ).all()
        log_rows = conn.execute(select(run_logs).where(run_logs.c.run_id == run_id).order_by(run_logs.c.id)).all()
        item_counts: dict[str, int] = dict(
            conn.execute(
                select(run_items.c.status, func.count())
                .where(run_items.c.run_id == run_id)
                .group_by(run_items.c.status)
            ).all()
        )
    detail = _run_summary(row)
    detail.update(
        params=masked(row.params),
        domain=row.domain,
        series=row.series,
        scheduled_for=_iso(row.scheduled_for),
        result=row.result,
        progress={"done": row.progress_done, "total": row.progress_total, "message": row.progress_message},
        retried_by=row.retried_by,
        retried_at=_iso(row.retried_at),
        attempt_history=[
            {
                "series": a.series,
                "number": a.number,
                "worker": a.worker,
                "started_at": _iso(a.started_at),
                "finished_at": _iso(a.finished_at),
                "outcome": a.outcome,
                "error_class": a.error_class,
                "error_message": a.error_message,
                "traceback": a.traceback,
            }
            for a in attempt_rows
        ],
        items={status: int(item_counts.get(status, 0)) for status in ("ok", "failed", "skipped")},
        error_count=int(item_counts.get("failed", 0)),
        logs=[{"id": lg.id, "at": _iso(lg.at), "level": lg.level, "message": lg.message} for lg in log_rows],
    )
    return detail


def items_of(engine: Engine, run_id: str, *, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """A run's item results, optionally only those of one status (e.g. the failed ones)."""
    query = select(run_items).where(run_items.c.run_id == run_id).order_by(run_items.c.id).limit(limit)
    if status:
        query = query.where(run_items.c.status == status)
    with engine.connect() as conn:
        return [{"key": r.key, "status": r.status, "message": r.message, "at": _iso(r.at)} for r in conn.execute(query)]
