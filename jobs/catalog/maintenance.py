"""Built-in maintenance job types (seed 000, 002): idle sessions, undelivered mail, old logs, indexes.

All four are installation-wide (admins only) and exclusive: two runs of one never work on the same rows
at once. Deletes of unbounded size go in batches of PURGE_BATCH rows, one transaction each, so that the
live system keeps writing between them and a cancel is noticed between them; work already committed
stays done, and a later run carries on where a cancelled or failed one stopped.

On SQLite every write of this module takes the file's write lock the way core/hotsql.py does (flock,
then BEGIN IMMEDIATE), so that hot-path writers queue on the flock instead of sleeping in SQLite's busy
handler; between batches it pauses for as long as the batch held the lock, so that writers which are
sleeping there get their turn too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Engine, FromClause, Table, and_, delete, exists, func, select

from core.db import utcnow
from core.hotsql import sqlite_write_lock
from core.mail import outbox
from dashboard.auth.models import sessions_table
from jobs.catalog import upkeep
from jobs.context import JobContext
from jobs.models import RunItem, run_logs_table, runs_table
from jobs.registry import Param, job_type
from jobs.status import FINAL, RunStatus
from scheduler import triggers

PURGE_BATCH = 5_000
# A batch also looks at no more than this many ids, so sparse old rows never make one transaction scan
# a whole table under the lock.
SCAN_WINDOW = 50 * PURGE_BATCH
# SQLite: after each batch, other writers get the lock for as long as the batch held it, up to this.
MAX_PAUSE_S = 0.2
MAX_DAYS = 36_500  # beyond a century a cutoff is meaningless, and datetime arithmetic overflows
MAX_HOURS = 24 * MAX_DAYS
LONG_TIMEOUT_S = 6 * 3600
NOT_FINAL = tuple(sorted(s.value for s in RunStatus if s not in FINAL))
run_items_table = cast(Table, RunItem.__table__)


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite behind the same flock as the hot paths (core/hotsql.py)."""
    lock = sqlite_write_lock(engine) if engine.dialect.name == "sqlite" else None
    if lock is not None:
        lock.acquire()
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        if lock is not None:
            lock.release()


Condition = Callable[[FromClause], ColumnElement[bool]]


class _Batches:
    """Deletes rows in id order, PURGE_BATCH per transaction, reporting progress over every table."""

    def __init__(self, ctx: JobContext, tables: list[Table]) -> None:
        self.ctx = ctx
        self.sqlite = ctx.engine.dialect.name == "sqlite"
        with ctx.engine.connect() as conn:
            # Rows added after this are newer than any cutoff, so the ids now present bound the work.
            self.spans = {t.name: conn.execute(select(func.min(t.c.id), func.max(t.c.id))).one() for t in tables}
        self.total = sum(high - low + 1 for low, high in self.spans.values() if low is not None)
        self.done = 0
        self.batches = 0

    def delete(self, table: Table, condition: Condition, *, what: str) -> int:
        low, high = self.spans[table.name]
        if low is None:
            return 0
        chosen = table.alias("chosen")
        after, removed = low - 1, 0
        while after < high:
            self.ctx.check_cancelled()
            window_end = min(after + SCAN_WINDOW, high)
            batch = (
                select(chosen.c.id)
                .where(chosen.c.id > after, chosen.c.id <= window_end, condition(chosen))
                .order_by(chosen.c.id)
                .limit(PURGE_BATCH)
            )
            started = time.monotonic()
            with _writing(self.ctx.engine) as conn:
                gone = conn.execute(delete(table).where(table.c.id.in_(batch)).returning(table.c.id)).scalars().all()
            held = time.monotonic() - started
            removed += len(gone)
            self.batches += 1
            position = max(gone) if len(gone) == PURGE_BATCH else window_end
            self.done += position - after
            after = position
            self.ctx.progress(self.done, self.total, f"{what}: {removed} removed")
            if self.sqlite and gone:
                time.sleep(min(held, MAX_PAUSE_S))
        return removed


def _cutoff(days: int) -> datetime:
    return utcnow() - timedelta(days=days)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@job_type(
    "maintenance.clean_idle_sessions",
    title="Clean Idle Sessions",
    description=(
        "Ends dashboard sessions nobody has used for more than the given number of hours (4 by default) and "
        "every session past its expiry time. By default it runs every hour."
    ),
    params=[
        Param(
            "idle_hours",
            int,
            default=4,
            help=f"hours without a request after which a session goes (1 to {MAX_HOURS})",
            minimum=1,
            maximum=MAX_HOURS,
        )
    ],
    # Hourly: a session then lives at most an hour past its idle limit, and the delete uses the index on
    # last_seen_at, so an hourly run costs next to nothing. Not a wall-clock time: nothing ties it to one.
    default_schedule=triggers.interval(3600),
    exclusive=True,
)
def clean_idle_sessions(ctx: JobContext, idle_hours: int) -> dict[str, Any]:
    now = utcnow()
    sessions = sessions_table.c
    with _writing(ctx.engine) as conn:
        expired = conn.execute(delete(sessions_table).where(sessions.expires_at <= now)).rowcount
        idle = conn.execute(
            delete(sessions_table).where(sessions.last_seen_at < now - timedelta(hours=idle_hours))
        ).rowcount
    if expired or idle:
        ctx.info(
            f"Removed {_plural(expired + idle, 'dashboard session')}: {expired} expired, "
            f"{idle} idle for more than {idle_hours} h"
        )
    else:
        ctx.info(f"Nothing to remove: no dashboard session is expired or idle for more than {idle_hours} h")
    return {"idle_hours": idle_hours, "expired_removed": expired, "idle_removed": idle, "removed": expired + idle}


@job_type(
    "maintenance.delete_undelivered_emails",
    title="Delete Undelivered Emails",
    description=(
        "Clears outbox messages whose delivery failed for good (status undelivered) and that were queued more "
        "than the given number of days ago. Pending and sent messages are never touched."
    ),
    params=[
        Param(
            "older_than_days",
            int,
            default=30,
            help=f"age in days of the undelivered messages to delete (0 to {MAX_DAYS}; 0: all of them)",
            minimum=0,
            maximum=MAX_DAYS,
        )
    ],
    timeout_s=LONG_TIMEOUT_S,
    exclusive=True,
)
def delete_undelivered_emails(ctx: JobContext, older_than_days: int) -> dict[str, Any]:
    cutoff = _cutoff(older_than_days)
    removed = _Batches(ctx, [outbox]).delete(
        outbox,
        lambda rows: and_(rows.c.status == "undelivered", rows.c.created_at < cutoff),
        what="undelivered emails",
    )
    if removed:
        ctx.info(f"Deleted {_plural(removed, 'undelivered email')} queued before {cutoff:%Y-%m-%d %H:%M} UTC")
    else:
        ctx.info(f"Nothing to delete: no undelivered email was queued before {cutoff:%Y-%m-%d %H:%M} UTC")
    return {"older_than_days": older_than_days, "cutoff": cutoff.isoformat(), "removed": removed}


def _of_settled_run(rows: FromClause) -> ColumnElement[bool]:
    # Spelled as "no unfinished run" so that PostgreSQL reads the few unfinished runs through the status
    # index; a run that becomes unfinished meanwhile (a retry by hand) is checked again by each batch.
    return ~exists().where(runs_table.c.id == rows.c.run_id, runs_table.c.status.in_(NOT_FINAL))


@job_type(
    "maintenance.purge_old_logs",
    title="Purge Old Logs",
    description=(
        "Removes run log lines and item results older than the given number of days. The runs themselves and "
        "their attempts stay; so does everything of a run that has not finished yet, however old."
    ),
    params=[
        Param(
            "older_than_days",
            int,
            default=90,
            help=f"age in days of the log lines and item results to remove (1 to {MAX_DAYS})",
            minimum=1,
            maximum=MAX_DAYS,
        )
    ],
    timeout_s=LONG_TIMEOUT_S,
    exclusive=True,
)
def purge_old_logs(ctx: JobContext, older_than_days: int) -> dict[str, Any]:
    cutoff = _cutoff(older_than_days)
    batches = _Batches(ctx, [run_logs_table, run_items_table])
    lines = batches.delete(
        run_logs_table, lambda rows: and_(rows.c.at < cutoff, _of_settled_run(rows)), what="log lines"
    )
    items = batches.delete(
        run_items_table, lambda rows: and_(rows.c.at < cutoff, _of_settled_run(rows)), what="item results"
    )
    before = f"from before {cutoff:%Y-%m-%d %H:%M} UTC"
    if lines or items:
        ctx.info(f"Removed {_plural(lines, 'log line')} and {_plural(items, 'item result')} {before}")
    else:
        ctx.info(f"Nothing to remove: no log line or item result of a finished run dates {before}")
    return {
        "older_than_days": older_than_days,
        "cutoff": cutoff.isoformat(),
        "log_lines_removed": lines,
        "item_results_removed": items,
        "batches": batches.batches,
    }


@job_type(
    "maintenance.reorganise_indexes",
    title="Reorganise or Rebuild Indexing",
    description=(
        "The database's own upkeep: rebuilds every index of Jobyard's tables and refreshes the planner's "
        "statistics (SQLite: REINDEX, VACUUM, ANALYZE; PostgreSQL: REINDEX CONCURRENTLY, VACUUM, ANALYZE, "
        "without stopping writers), and reports each table's rows and bytes before and after. "
        "By default it runs every Sunday at 03:00 UTC."
    ),
    params=[
        Param(
            "vacuum",
            bool,
            default=True,
            help=(
                "also VACUUM: on SQLite rebuilds the file and gives its free pages back to the disk; on PostgreSQL "
                "(never FULL) makes the room of deleted rows reusable"
            ),
        )
    ],
    # Weekly at a quiet hour: rebuilding is heavy I/O and index bloat builds up over weeks, not hours.
    default_schedule=triggers.weekly("sun@03:00"),
    timeout_s=LONG_TIMEOUT_S,
    exclusive=True,
)
def reorganise_indexes(ctx: JobContext, vacuum: bool) -> dict[str, Any]:
    return upkeep.reorganise(ctx, vacuum=vacuum)
