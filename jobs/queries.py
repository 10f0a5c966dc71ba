"""Read-side views of the record, shared by the CLI (and later the dashboard and API)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, func, literal, select

from core.crypto import masked
from jobs.models import RunItem
from jobs.models import attempts_table as attempts
from jobs.models import run_logs_table as run_logs
from jobs.models import runs_table as runs
from jobs.status import RunStatus
from workers.models import workers_table as workers

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
    # runs.started_at is the start of the latest attempt (each claim sets it); the run's own start is its first
    # attempt's, over every series. The API and the page keep started_at: it is what their running time measures.
    first_start = min((a.started_at for a in attempt_rows), default=row.started_at)
    detail.update(
        first_started_at=_iso(first_start),
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


_HEX_DIGITS = "0123456789abcdef"
# The character after each hex digit in the id's order, "g" after "f": a prefix's ids lie in [prefix, successor).
_NEXT_DIGIT = dict(zip(_HEX_DIGITS, _HEX_DIGITS[1:] + "g", strict=True))


def runs_by_id_prefix(engine: Engine, text: str, *, limit: int) -> list[dict[str, Any]]:
    """The run whose id is `text`, else up to `limit` runs whose id starts with it, by id.

    Run ids are 32 lowercase hex digits (uuid4().hex), so a prefix is matched case-insensitively and anything
    else matches nothing. The prefix is a range on the primary key as well as a LIKE, because a LIKE alone scans:
    SQLite's LIKE ignores case, so the binary key index cannot serve it (a full index scan), and PostgreSQL serves
    LIKE from a btree only under the C or POSIX collation or with a *_pattern_ops index (C.UTF-8 does not count
    before PostgreSQL 17: a sequential scan). The range is an index range scan on both, and for hex digits it
    selects exactly the prefix's ids under C and under linguistic collations alike (digits sort before letters)."""
    columns = (runs.c.id, runs.c.type, runs.c.status, runs.c.queue)
    with engine.connect() as conn:
        exact = conn.execute(select(*columns).where(runs.c.id == text)).first()
        if exact is not None:
            return [dict(exact._mapping)]
        prefix = text.lower()
        if not prefix or len(prefix) > 32 or not set(prefix) <= set(_HEX_DIGITS):
            return []
        successor = prefix[:-1] + _NEXT_DIGIT[prefix[-1]]
        query = (
            select(*columns)
            .where(runs.c.id >= prefix, runs.c.id < successor, runs.c.id.like(prefix + "%"))
            .order_by(runs.c.id)
            .limit(limit)
        )
        return [dict(r._mapping) for r in conn.execute(query)]


def waiting_queues(engine: Engine, run_ids: Sequence[str]) -> set[str]:
    """The queues these runs wait on (not those already settled, e.g. cancelled with a failed dependency)."""
    if not run_ids:
        return set()
    with engine.connect() as conn:
        return set(
            conn.execute(
                select(runs.c.queue).where(runs.c.id.in_(list(run_ids)), runs.c.status != RunStatus.CANCELLED)
            ).scalars()
        )


def queue_has_had_workers(engine: Engine, queue: str) -> bool:
    """Whether any worker process ever started has listened on `queue` (workers.queues is comma-separated)."""
    listed = literal(",") + workers.c.queues + literal(",")
    with engine.connect() as conn:
        found = conn.execute(select(literal(1)).where(listed.contains(f",{queue},", autoescape=True)).limit(1))
        return found.first() is not None
