"""The database's own upkeep behind "Reorganise or Rebuild Indexing": rebuild the indexes, vacuum,
refresh the planner's statistics, and measure Jobyard's tables (rows and bytes) before and after.

SQLite: REINDEX and ANALYZE per table, VACUUM, then a WAL checkpoint (VACUUM writes the whole file into
the WAL). VACUUM cannot run inside a transaction and the engine's connections always open one (BEGIN
IMMEDIATE, core/db.py), so the statements go through a raw driver connection in autocommit mode, each
behind the write flock of core/hotsql.py, one table at a time so that other writers get in between.
Sizes come from dbstat, read in a deferred transaction, which never takes the write lock.

PostgreSQL: REINDEX TABLE CONCURRENTLY (12 and later) outside any transaction block, so writers carry
on while each index is rebuilt beside the old one; then VACUUM (ANALYZE), never FULL, or ANALYZE. A
concurrent rebuild that is interrupted leaves an invalid index behind: reported as a warning.

Jobyard's tables are those of its models (every models module is imported below; catalogue modules
register theirs when loaded) that exist in the database, so that on a shared PostgreSQL database nothing
of another application's is touched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, func, inspect, select, table, text

# Imported for their tables: with these, every table of Jobyard is in Base.metadata.
import core.mail  # noqa: F401
import dashboard.auth.models  # noqa: F401
import jobs.models
import jobs.type_settings  # noqa: F401
import scheduler.models  # noqa: F401
import workers.models  # noqa: F401
from core.db import Base
from core.hotsql import sqlite_write_lock

if TYPE_CHECKING:
    from jobs.context import JobContext

# Pages of each table and of its indexes, counted under the table's name.
_DBSTAT = (
    "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat AS s JOIN sqlite_master AS m ON m.name = s.name GROUP BY m.tbl_name"
)
_PG_BYTES = text(
    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class AS c "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname IN :names"
).bindparams(bindparam("names", expanding=True))
_PG_INVALID = text(
    "SELECT i.relname, t.relname FROM pg_index AS x "
    "JOIN pg_class AS i ON i.oid = x.indexrelid JOIN pg_class AS t ON t.oid = x.indrelid "
    "JOIN pg_namespace AS n ON n.oid = t.relnamespace "
    "WHERE n.nspname = current_schema() AND NOT x.indisvalid AND t.relname IN :names ORDER BY 1"
).bindparams(bindparam("names", expanding=True))
CONCURRENT_REINDEX_SINCE = (12,)


@dataclass(frozen=True)
class Measure:
    rows: dict[str, int]
    bytes: dict[str, int | None]
    file_bytes: int | None = None  # SQLite: the database file's pages in use or free
    free_pages: int | None = None


def jobyard_tables(engine: Engine) -> list[str]:
    present = set(inspect(engine).get_table_names())
    return sorted(name for name in Base.metadata.tables if name in present)


def _count(engine: Engine, name: str) -> str:
    return str(select(func.count()).select_from(table(name)).compile(dialect=engine.dialect))


@contextmanager
def _driver(engine: Engine) -> Iterator[Any]:
    """SQLite's own connection, in autocommit mode (core/db.py turns pysqlite's implicit BEGIN off)."""
    raw = engine.raw_connection()
    try:
        yield raw.driver_connection
    finally:
        raw.close()


def _sqlite_measure(engine: Engine, tables: list[str]) -> Measure:
    with _driver(engine) as db:
        db.execute("BEGIN")  # deferred: one snapshot for every figure, and no write lock
        try:
            rows = {name: int(db.execute(_count(engine, name)).fetchone()[0]) for name in tables}
            try:
                pages: dict[str, int] | None = {name: int(size) for name, size in db.execute(_DBSTAT)}
            except sqlite3.OperationalError:  # a SQLite built without the dbstat table
                pages = None
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            page_count = db.execute("PRAGMA page_count").fetchone()[0]
            free_pages = db.execute("PRAGMA freelist_count").fetchone()[0]
        finally:
            db.execute("COMMIT")
    sizes = {name: (pages.get(name, 0) if pages is not None else None) for name in tables}
    return Measure(rows, sizes, int(page_size * page_count), int(free_pages))


def _sqlite_reorganise(ctx: JobContext, tables: list[str], vacuum: bool) -> list[str]:
    quote = ctx.engine.dialect.identifier_preparer.quote_identifier
    # Identifiers come from Jobyard's own models, never from a parameter.
    steps = [(f"REINDEX {name}", f"REINDEX {quote(name)}") for name in tables]
    if vacuum:
        steps += [("VACUUM", "VACUUM"), ("WAL checkpoint", "PRAGMA wal_checkpoint(TRUNCATE)")]
    steps += [(f"ANALYZE {name}", f"ANALYZE {quote(name)}") for name in tables]
    lock = sqlite_write_lock(ctx.engine)
    with _driver(ctx.engine) as db:
        for done, (label, sql) in enumerate(steps):
            ctx.check_cancelled()
            ctx.progress(done, len(steps), label)
            if lock is not None:
                lock.acquire()
            try:
                db.execute(sql).fetchall()
            finally:
                if lock is not None:
                    lock.release()
    ctx.progress(len(steps), len(steps), "done")
    return ["REINDEX", *(["VACUUM"] if vacuum else []), "ANALYZE"]


def _pg_measure(engine: Engine, tables: list[str]) -> Measure:
    with engine.connect() as conn:
        rows = {name: int(conn.execute(select(func.count()).select_from(table(name))).scalar_one()) for name in tables}
        sizes: dict[str, int | None] = {name: int(size) for name, size in conn.execute(_PG_BYTES, {"names": tables})}
    return Measure(rows, sizes)


def _pg_reorganise(ctx: JobContext, tables: list[str], vacuum: bool) -> list[str]:
    quote = ctx.engine.dialect.identifier_preparer.quote_identifier
    with ctx.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # REINDEX CONCURRENTLY and VACUUM refuse a transaction
        concurrent = (conn.dialect.server_version_info or (0,)) >= CONCURRENT_REINDEX_SINCE
        reindex = "REINDEX TABLE CONCURRENTLY" if concurrent else "REINDEX TABLE"
        refresh = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
        if not concurrent:
            ctx.warning("PostgreSQL before 12 cannot rebuild indexes concurrently: writers wait while each table's are")
        # Identifiers come from Jobyard's own models, never from a parameter.
        steps = [(f"{verb} {name}", text(f"{verb} {quote(name)}")) for name in tables for verb in (reindex, refresh)]
        for done, (label, statement) in enumerate(steps):
            ctx.check_cancelled()
            ctx.progress(done, len(steps), label)
            conn.execute(statement)
        invalid = conn.execute(_PG_INVALID, {"names": tables}).all()
    ctx.progress(len(steps), len(steps), "done")
    for index, owner in invalid:
        ctx.warning(
            f"index {index} of {owner} is invalid (an interrupted concurrent rebuild leaves one behind): "
            f"drop it with DROP INDEX CONCURRENTLY"
        )
    return [reindex, refresh]


def _size(count: int | None) -> str:
    if count is None:
        return "size unknown"
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def _total(sizes: dict[str, int | None]) -> int | None:
    known = [size for size in sizes.values() if size is not None]
    return sum(known) if len(known) == len(sizes) else None


def reorganise(ctx: JobContext, *, vacuum: bool) -> dict[str, Any]:
    engine = ctx.engine
    sqlite = engine.dialect.name == "sqlite"
    tables = jobyard_tables(engine)
    measure = _sqlite_measure if sqlite else _pg_measure
    before = measure(engine, tables)
    statements = (_sqlite_reorganise if sqlite else _pg_reorganise)(ctx, tables, vacuum)
    after = measure(engine, tables)
    # Logged only now, so that the figures above are not moved by the job's own log lines.
    report: dict[str, dict[str, int | None]] = {}
    for name in tables:
        report[name] = {
            "rows_before": before.rows[name],
            "rows_after": after.rows[name],
            "bytes_before": before.bytes.get(name),
            "bytes_after": after.bytes.get(name),
        }
        ctx.info(
            f"{name}: {before.rows[name]:,} rows, {_size(before.bytes.get(name))} → "
            f"{after.rows[name]:,} rows, {_size(after.bytes.get(name))}"
        )
    total_before, total_after = _total(before.bytes), _total(after.bytes)
    ctx.info(
        f"{' + '.join(statements)} on {len(tables)} tables ({engine.dialect.name}): "
        f"{_size(total_before)} → {_size(total_after)}"
        + (f"; database file {_size(before.file_bytes)} → {_size(after.file_bytes)}" if sqlite else "")
    )
    result: dict[str, Any] = {
        "database": engine.dialect.name,
        "statements": statements,
        "tables": report,
        "bytes_before": total_before,
        "bytes_after": total_after,
    }
    if sqlite:
        result.update(
            file_bytes_before=before.file_bytes,
            file_bytes_after=after.file_bytes,
            free_pages_before=before.free_pages,
            free_pages_after=after.free_pages,
        )
    return result
