"""SQL on the hot paths (enqueue, claim, finish): fixed statement text run straight on the driver.

Profiling showed SQLAlchemy spending more per statement than SQLite itself (cache keys, compilation,
transaction bookkeeping, events): ~370 µs against ~170 µs for a raw insert into `runs`. These statements
never change shape, so their text is written once, in SQL that SQLite and PostgreSQL both accept, and run
on a DB-API cursor: of a connection of our own per thread, or of the caller's SQLAlchemy session when
the work must join the caller's transaction. Values cross in the driver's own terms (timestamps and
JSON below), matching what SQLAlchemy's column types store, so both paths read each other's rows.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class Row(dict[str, Any]):
    """A result row readable as row["col"] or row.col."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Runner:
    """Runs statement text with :named parameters on one DB-API cursor."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self.cursor = cursor
        self.postgres = postgres

    def __call__(self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = {}) -> int:
        """Executes; returns the row count."""
        text = _pyformat(sql) if self.postgres else sql
        if isinstance(params, Mapping):
            self.cursor.execute(text, params)
        else:
            self.cursor.executemany(text, params)
        return int(self.cursor.rowcount)

    def all(self, sql: str, params: Mapping[str, Any] = {}) -> list[Row]:
        self(sql, params)
        names = [d[0] for d in self.cursor.description]
        return [Row(zip(names, values, strict=True)) for values in self.cursor.fetchall()]

    def one(self, sql: str, params: Mapping[str, Any] = {}) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    @classmethod
    def joining(cls, conn: Connection) -> Runner:
        """A runner inside the transaction of a SQLAlchemy connection (a caller's session)."""
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        return cls(dbapi.cursor(), conn.dialect.name == "postgresql")


class FileLock:
    """An exclusive flock shared by every process writing one SQLite file.

    SQLite's own busy handler sleeps in steps of up to 100 ms while another process holds the write
    lock; two workers committing hundreds of times a second then lose most of their time asleep. A
    process waiting on flock is woken the moment the holder lets go. Threads of one process take turns
    through the mutex first, since flock is per open file description.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> None:
        self._mutex.acquire()
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._mutex.release()


_LOCKS: dict[str, FileLock] = {}


def sqlite_write_lock(engine: Engine) -> FileLock | None:
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    path = f"{database}.write-lock"
    return _LOCKS.setdefault(path, FileLock(path))


class HotSQL:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._write_lock = None if self.postgres else sqlite_write_lock(engine)

    # -- values --------------------------------------------------------------------------------------

    def ts(self, value: datetime | None) -> Any:
        if value is None:
            return None
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # SQLAlchemy's SQLite DateTime storage format, so that both paths compare as equals.
        # isoformat pads years below 1000 to four digits; strftime("%Y") does not, and SQLite could not read
        # such a value back.
        return naive if self.postgres else naive.isoformat(sep=" ", timespec="microseconds")

    def json(self, value: Any) -> Any:
        if self.postgres:
            from psycopg.types.json import Json

            return Json(value)
        return json.dumps(value)

    @staticmethod
    def from_json(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    # -- execution -----------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Runner]:
        # Checked out per transaction, so that many producer threads share the pool instead of each
        # holding a connection for its lifetime.
        raw = self.engine.raw_connection()
        cursor = raw.cursor()
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            if not self.postgres:
                # Take the write lock up front; see core/db.py.
                cursor.execute("BEGIN IMMEDIATE")
            yield Runner(cursor, self.postgres)
            raw.commit()
        except BaseException:
            try:
                raw.rollback()
            except Exception:
                raw.invalidate()  # broken: the pool opens a fresh one next time
            raise
        finally:
            if lock is not None:
                lock.release()
            cursor.close()
            raw.close()
