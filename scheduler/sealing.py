"""The sealing pass: signs settled runs and attempts (core/integrity.py) off the workers' hot path.

A run is settled once its status is final, an attempt once it has finished; from then on their signed
columns do not change, unless a manual retry puts the run back in play, which clears its HMAC
(jobs/actions.py). The scheduler's housekeeping thread calls `seal_settled` every pass; the integrity
jobs use `sign_rows` and `settled` too.

Each batch reads up to SEAL_BATCH unsigned settled rows, computes their HMACs outside any transaction,
then writes them in one transaction whose UPDATE only touches a row still unsigned and still in the
state that was signed (a run's status and attempt series), so that a retry racing the pass is never
sealed with stale content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, Table, Update, bindparam, select, text, true, update

from core import defaults, integrity
from core.hotsql import sqlite_write_lock
from dashboard.auth.models import audit_table
from jobs.models import attempts_table, runs_table
from jobs.status import FINAL

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.sealing")

TABLES: dict[str, Table] = {"runs": runs_table, "run_attempts": attempts_table, "audit_log": audit_table}
FINAL_VALUES = sorted(s.value for s in FINAL)


def settled(table: Table) -> ColumnElement[bool]:
    """Rows whose signed content no longer changes."""
    if table is runs_table:
        return runs_table.c.status.in_(FINAL_VALUES)
    if table is attempts_table:
        return attempts_table.c.finished_at.is_not(None)
    return true()  # an audit entry is final when written


def signed_select(table: Table) -> Any:
    """The columns a row's HMAC covers, plus its HMAC."""
    names = integrity.SIGNED_COLUMNS[table.name]
    return select(*(table.c[n] for n in names), table.c.hmac)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite behind the hot paths' flock (core/hotsql.py), so that hot-path
    writers queue on it instead of sleeping in SQLite's busy handler."""
    lock = sqlite_write_lock(engine) if engine.dialect.name == "sqlite" else None
    if lock is not None:
        lock.acquire()
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        if lock is not None:
            lock.release()


def sign_rows(engine: Engine, key: bytes, table: Table, rows: Sequence[Row[Any]], *, only_unsigned: bool) -> int:
    """Writes the HMACs of `rows` (read with `signed_select`); returns how many rows took a new HMAC.

    The UPDATE re-checks that each row is still settled and in the state read (for a run, its status and
    series), so a row changed since it was read keeps no stale HMAC."""
    if not rows:
        return 0
    values: list[dict[str, Any]] = []
    for row in rows:
        mapping = row._mapping
        if table is runs_table and mapping["status"] not in FINAL_VALUES:
            continue  # still in play: signed once settled
        mac = integrity.sign_row(key, table.name, mapping)
        if mac == mapping["hmac"]:
            continue  # already right: nothing to write (keeps recompute idempotent and cheap)
        entry: dict[str, Any] = {"b_id": mapping["id"], "b_hmac": mac}
        if table is runs_table:
            entry |= {"b_status": mapping["status"], "b_series": mapping["series"]}
        values.append(entry)
    if not values:
        return 0
    with writing(engine) as conn:
        if engine.dialect.name == "postgresql":
            return _update_from_values(conn, table, values, only_unsigned=only_unsigned)
        result = conn.execute(_update_each(table, only_unsigned=only_unsigned), values)
    # Some drivers cannot count the rows an executemany touched (-1): then every row written counts.
    return result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(values)


def _guards(table: Table, source: Any, *, only_unsigned: bool) -> list[ColumnElement[bool]]:
    c = table.c
    where = [c.id == source["b_id"]]
    if only_unsigned:
        where.append(c.hmac.is_(None))
    if table is runs_table:
        # The status read was final (only settled rows are signed), so equality keeps it settled.
        where += [c.status == source["b_status"], c.series == source["b_series"]]
    else:
        where.append(settled(table))
    return where


def _update_each(table: Table, *, only_unsigned: bool) -> Update:
    """One UPDATE run per row (executemany): SQLite does these in microseconds."""
    names = ("b_id", "b_hmac", "b_status", "b_series")
    return (
        update(table)
        .where(*_guards(table, {n: bindparam(n) for n in names}, only_unsigned=only_unsigned))
        .values(hmac=bindparam("b_hmac"))
    )


def _update_from_values(conn: Connection, table: Table, rows: list[dict[str, Any]], *, only_unsigned: bool) -> int:
    """One UPDATE … FROM unnest(arrays) for the whole batch: on PostgreSQL a round trip per row would cost
    more than the signing, and a VALUES list costs as much again to compile. The guards are those of
    `_guards`, spelled in SQL."""
    guards = ["t.id = s.b_id"]
    if only_unsigned:
        guards.append("t.hmac IS NULL")
    arrays = {"ids": [r["b_id"] for r in rows], "hmacs": [r["b_hmac"] for r in rows]}
    if table is runs_table:
        guards += ["t.status = s.b_status", "t.series = s.b_series"]
        arrays |= {"statuses": [r["b_status"] for r in rows], "series": [r["b_series"] for r in rows]}
        source = (
            "unnest(CAST(:ids AS text[]), CAST(:hmacs AS text[]), CAST(:statuses AS text[]), "
            "CAST(:series AS integer[])) AS s(b_id, b_hmac, b_status, b_series)"
        )
    else:
        source = "unnest(CAST(:ids AS bigint[]), CAST(:hmacs AS text[])) AS s(b_id, b_hmac)"
        if table is attempts_table:
            guards.append("t.finished_at IS NOT NULL")
    statement = f"UPDATE {table.name} AS t SET hmac = s.b_hmac FROM {source} WHERE {' AND '.join(guards)}"
    return int(conn.execute(text(statement), arrays).rowcount)


def seal_batch(engine: Engine, key: bytes, table: Table, limit: int) -> tuple[int, int]:
    """Signs up to `limit` unsigned settled rows of `table`; returns (rows read, rows signed)."""
    query = signed_select(table).where(table.c.hmac.is_(None), settled(table)).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return len(rows), sign_rows(engine, key, table, rows, only_unsigned=True)


def seal_settled(app: Jobyard, *, budget_s: float = defaults.SEAL_BUDGET_S) -> int:
    """Signs unsigned settled runs and attempts, batch by batch, for at most about `budget_s`; returns
    how many it signed. Audit entries are signed when written (dashboard/auth/audit.py): one found
    unsigned is an anomaly for Verify HMAC to report, not something to sign quietly."""
    if not app.settings.secret_key:
        return 0
    key = integrity.records_key(app.settings.secret_key)
    deadline = time.monotonic() + budget_s
    signed = 0
    for table in (runs_table, attempts_table):
        while True:
            read, done = seal_batch(app.engine, key, table, defaults.SEAL_BATCH)
            signed += done
            if read < defaults.SEAL_BATCH or time.monotonic() > deadline:
                break
    if signed:
        log.info("sealed %d settled row(s)", signed)
    return signed
