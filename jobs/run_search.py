"""The runs list: filters, role scope and keyset pagination (newest first), for the dashboard and the API.

Pages are cut on (created_at, id), never by OFFSET, so page 1,000 costs what page 1 does; each filter
has an index led by its column and followed by created_at (migration 0008).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Engine, Table, and_, func, or_, select, true

from core import defaults
from jobs.models import RunItem
from jobs.models import runs_table as runs
from jobs.status import RunStatus

run_items = cast(Table, RunItem.__table__)
MIN_SEARCH_LENGTH = 3


class BadFilter(ValueError):
    """Carries the field it is about, for a 422 answer naming it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class RunFilter:
    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    queue: str | None = None
    domain: str | None = None
    triggered_by: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str | None = None
    schedule_id: int | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in self.statuses if s not in RunStatus.__members__.values()]
        if unknown:
            raise BadFilter("status", f"unknown status {', '.join(unknown)}; one of {', '.join(RunStatus)}")
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise BadFilter("created_from", "must not be after created_to")
        if self.text is not None and len(self.text) > 200:
            raise BadFilter("q", "at most 200 characters")
        if self.text is not None and 0 < len(self.text.strip()) < MIN_SEARCH_LENGTH:
            # Shorter needles match almost everything and no trigram index can serve them.
            raise BadFilter("q", f"at least {MIN_SEARCH_LENGTH} characters")

    def condition(self) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        if self.types:
            parts.append(runs.c.type.in_(self.types))
        if self.statuses:
            parts.append(runs.c.status.in_(self.statuses))
        if self.queue:
            parts.append(runs.c.queue == self.queue)
        if self.domain:
            parts.append(runs.c.domain == self.domain)
        if self.triggered_by:
            parts.append(runs.c.triggered_by == self.triggered_by)
        if self.created_from:
            parts.append(runs.c.created_at >= self.created_from)
        if self.created_to:
            parts.append(runs.c.created_at < self.created_to)
        if self.schedule_id is not None:
            parts.append(runs.c.schedule_id == self.schedule_id)
        if self.text and self.text.strip():
            needle = "%" + self.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            parts.append(
                or_(
                    runs.c.id == self.text.strip().lower(),
                    runs.c.type.ilike(needle, escape="\\"),
                    runs.c.triggered_by.ilike(needle, escape="\\"),
                    runs.c.error.ilike(needle, escape="\\"),
                )
            )
        return and_(true(), *parts)


def encode_cursor(created_at: datetime, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, run_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None or not run_id.isalnum():
            raise ValueError(cursor)
        return created_at.astimezone(UTC), run_id
    except (ValueError, OverflowError, UnicodeDecodeError):
        raise BadFilter("cursor", "not a cursor this server handed out") from None


@dataclass(frozen=True)
class RunPage:
    runs: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _running_time_s(row: Any) -> float | None:
    if row.started_at is None:
        return None
    end = row.finished_at or datetime.now(row.started_at.tzinfo)
    return round(float((end - row.started_at).total_seconds()), 3)


def page_of_runs(
    engine: Engine,
    filters: RunFilter,
    *,
    scope: ColumnElement[bool] | None = None,
    cursor: str | None = None,
    limit: int = defaults.RUNS_PAGE_SIZE,
) -> RunPage:
    if not 1 <= limit <= defaults.RUNS_PAGE_SIZE_MAX:
        raise BadFilter("limit", f"must be between 1 and {defaults.RUNS_PAGE_SIZE_MAX}")
    query = (
        select(runs)
        .where(filters.condition(), scope if scope is not None else true())
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        created_at, run_id = decode_cursor(cursor)
        query = query.where(
            or_(runs.c.created_at < created_at, and_(runs.c.created_at == created_at, runs.c.id < run_id))
        )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        page, more = rows[:limit], len(rows) > limit
        errors: dict[str, int] = {}
        if page:
            errors = dict(
                conn.execute(
                    select(run_items.c.run_id, func.count())
                    .where(run_items.c.run_id.in_([r.id for r in page]), run_items.c.status == "failed")
                    .group_by(run_items.c.run_id)
                ).all()
            )
    return RunPage(
        runs=[
            {
                "id": r.id,
                "type": r.type,
                "status": r.status,
                "queue": r.queue,
                "domain": r.domain,
                "triggered_by": r.triggered_by,
                "created_at": _iso(r.created_at),
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "running_time_s": _running_time_s(r),
                "attempts": r.attempt_count,
                "max_attempts": r.max_attempts,
                "error_count": int(errors.get(r.id, 0)),
                "progress": {"done": r.progress_done, "total": r.progress_total, "message": r.progress_message},
                "next_attempt_at": _iso(r.next_attempt_at),
                "error": r.error,
                "cancel_requested": r.cancel_requested_at is not None,
            }
            for r in page
        ],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    )
