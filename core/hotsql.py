"""SQL on the hot paths (enqueue, claim, finish): fixed statement text run on a long-lived connection.

Profiling a no-op job showed SQLAlchemy spending ~180 µs per statement on building cache keys and
compiling, plus a pool checkout per transaction, against ~50 µs for SQLite itself. These statements
never change shape, so their text is written once and passed straight to the driver through
`exec_driver_sql`, on one connection per thread. Values cross the boundary in the driver's own terms
(timestamps and JSON below), matching what SQLAlchemy's column types store.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine
from sqlalchemy.exc import DBAPIError

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class HotSQL:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._local = threading.local()

    # -- values --------------------------------------------------------------------------------------

    def ts(self, value: datetime | None) -> Any:
        if value is None:
            return None
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # SQLAlchemy's SQLite DateTime storage format, so that both paths compare as equals.
        return naive if self.postgres else naive.strftime("%Y-%m-%d %H:%M:%S.%f")

    def json(self, value: Any) -> Any:
        if value is None:
            return None
        if self.postgres:
            from psycopg.types.json import Json

            return Json(value)
        return json.dumps(value)

    def from_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def from_ts(self, value: Any) -> datetime | None:
        if value is None:
            return None
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC)

    # -- execution -----------------------------------------------------------------------------------

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.conn = self.engine.connect()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Runner]:
        conn = self._connection()
        try:
            with conn.begin():
                yield Runner(conn, self.postgres)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                self._local.conn = None
            raise

    def close(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class Runner:
    def __init__(self, conn: Connection, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres

    def __call__(self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ()) -> CursorResult[Any]:
        text = _pyformat(sql) if self.postgres else sql
        if isinstance(params, Mapping):
            return self.conn.exec_driver_sql(text, dict(params))
        return self.conn.exec_driver_sql(text, [dict(p) for p in params])  # executemany
