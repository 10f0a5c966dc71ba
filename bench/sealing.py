"""The sealing pass's search for unsigned settled rows on a big, signed record. Prints figures; not a test.

    python bench/sealing.py [--runs 1000000] [--database-url postgresql+psycopg://postgres@127.0.0.1/test]

Fills a throwaway PostgreSQL database (and a SQLite file) with `--runs` settled runs that are all signed and
a hundred that are not, then times the read of one sealing batch (scheduler/sealing.py `seal_batch`'s
query) with the partial index ``ix_runs_unsigned`` (migration 0014) and after dropping it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from bench.dashboard import throwaway_database  # noqa: E402
from core import defaults  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from jobs.models import runs_table  # noqa: E402
from scheduler.sealing import settled, signed_select  # noqa: E402

UNSIGNED = 100
_FILL = """
INSERT INTO runs (id, type, queue, status, params, created_at, dispatched_at, finished_at, attempt_count, series,
                  max_attempts, timeout_s, hmac)
SELECT printf('%032d', i), 'demo.noop', 'default', 'completed', '{}', '2026-01-01 00:00:00',
       '2026-01-01 00:00:00', '2026-01-01 00:00:01', 1, 1, 5, 120,
       CASE WHEN i % :stride = 0 THEN NULL ELSE 'signed' END
FROM series
"""
_SQLITE_SERIES = "WITH RECURSIVE series(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM series WHERE i < :n) "
_PG_SERIES = "WITH series AS (SELECT generate_series(1, :n) AS i) "


def fill(engine: Engine, runs: int) -> None:
    sql = (_SQLITE_SERIES if engine.dialect.name == "sqlite" else _PG_SERIES) + _FILL
    if engine.dialect.name != "sqlite":
        sql = sql.replace("printf('%032d', i)", "lpad(i::text, 32, '0')").replace("'{}'", "'{}'::json")
    with engine.begin() as conn:
        conn.execute(text(sql), {"n": runs, "stride": max(1, runs // UNSIGNED)})
        conn.execute(text("ANALYZE"))


def timed(action: Callable[[], object], repeat: int = 30) -> tuple[float, float]:
    samples = []
    for _ in range(3):
        action()
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def measure(url: str, runs: int) -> None:
    engine = create_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    fill(engine, runs)
    loaded_s = time.perf_counter() - started
    print(f"{engine.dialect.name}: {runs:,} settled runs ({UNSIGNED} unsigned) loaded in {loaded_s:.1f} s")
    query = signed_select(runs_table).where(runs_table.c.hmac.is_(None), settled(runs_table)).limit(defaults.SEAL_BATCH)

    def read() -> int:
        with engine.connect() as conn:
            return len(conn.execute(query).all())

    assert read() == UNSIGNED
    with_index = timed(read)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_runs_unsigned"))
        conn.execute(text("ANALYZE"))
    without_index = timed(read, repeat=5)
    for label, (p50, worst) in (("partial index", with_index), ("without it", without_index)):
        print(f"  one sealing batch read, {label + ':':15} p50 {p50:8.2f} ms   max {worst:8.2f} ms")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{tmp}/bench.sqlite3", args.runs)
    with throwaway_database(args.database_url, keep=False) as url:
        measure(url, args.runs)


if __name__ == "__main__":
    main()
