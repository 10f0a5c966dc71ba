"""Dashboard read paths on a big record: the runs list, a run's detail, /metrics. Prints figures; not a test.

    python bench/dashboard.py [--runs 1000000] [--database-url URL] [--redis-url URL] [--repeat 30] [--keep]

A throwaway PostgreSQL database ``jobyard_bench_<random>`` is created at the (admin) URL, migrated, filled
server side (INSERT … SELECT generate_series: runs, attempts, items, logs), ANALYZEd, then each read is
timed `--repeat` times after 3 warm-ups: directly (jobs.run_search / jobs.queries) and over HTTP through
the Flask test client logged in as an admin (GET /runs, /api/v1/runs, /runs/<id>, /api/v1/runs/<id>).
Routes that answer 404 or a placeholder are reported as such, and a route that shows other runs than
page_of_runs is flagged. Last, the /metrics SQL refresh: cold (a new web process) and with settled attempts
already folded, and a cached scrape. The database is dropped unless --keep.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

# `python bench/dashboard.py` puts bench/ first on the path, where scheduler.py would shadow the package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.throughput import machine_facts  # noqa: E402
from core.app import Jobyard  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.settings import Settings  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from dashboard.auth.users import add_user  # noqa: E402
from dashboard.metrics import TTL_CONFIG_KEY, AttemptFigures, read_sql_figures  # noqa: E402
from jobs.queries import run_detail  # noqa: E402
from jobs.run_search import RunFilter, page_of_runs  # noqa: E402

DOMAINS = ["finance", "sales", "ops", "hr", "it"]
VERBS = ["export", "sync", "report", "mail", "import", "cleanup", "audit", "backup"]
# ~40 types, most common first (the draw is skewed towards low indexes); demo.* are declared, the rest are
# types of a past deployment, as an old record holds.
TYPES = [*[f"{d}.{v}" for v in VERBS for d in DOMAINS][:36], "demo.noop", "demo.sleep", "demo.fail", "demo.progress"]
TYPE_DOMAINS = [t.split(".")[0] if not t.startswith("demo.") else None for t in TYPES]
QUEUES = ["default", "reports", "bulk"]
TYPE_QUEUES = ["default" if t.startswith("demo.") else QUEUES[i % 3] for i, t in enumerate(TYPES)]
ERRORS = [
    "ConnectionError: connection to smtp.internal:25 timed out after 30 s",
    "KeyError: 'customer_id'",
    "ValueError: invoice total is negative",
    "OperationalError: server closed the connection unexpectedly",
    "HTTPError: 503 Service Unavailable from https://api.partner.example/v2/orders",
    "ReadTimeout: HTTPSConnectionPool(host='erp.example', port=443): Read timed out.",
    "PermissionError: [Errno 13] Permission denied: '/data/exports/daily.csv'",
    "RuntimeError: upstream returned 0 rows; refusing to overwrite the report",
    "JobTimeoutException: Task exceeded maximum timeout value (120 seconds)",
    "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0",
    'IntegrityError: duplicate key value violates unique constraint "uq_orders_ref"',
    "SMTPRecipientsRefused: {'ops@example.com': (550, b'mailbox unavailable')}",
]
DETAIL_RUN = "d" * 32
ADMIN, PASSWORD = "bench-admin", "bench password 123"
LIST_TARGET_MS, DETAIL_TARGET_MS = 100.0, 50.0
METRICS_COLD_TARGET_MS, METRICS_CACHED_TARGET_MS = 1000.0, 50.0
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CURSOR_LINK = re.compile(r"[?&;]cursor=([A-Za-z0-9_\-]+)")

_RUNS_SQL = """
WITH d AS (
  SELECT i, 1 + floor(power(random(), 2) * :ntypes)::int AS k, random() AS rs, random() AS rw, random() AS rt,
         random() AS rd, random() AS re, random() AS ra
  FROM generate_series(1, :n) AS i
), s AS (
  SELECT d.*, CASE WHEN rs < 0.010 THEN 'pending' WHEN rs < 0.012 THEN 'scheduled' WHEN rs < 0.013 THEN 'waiting'
    WHEN rs < 0.015 THEN 'running' WHEN rs < 0.018 THEN 'retrying' WHEN rs < 0.078 THEN 'failed'
    WHEN rs < 0.098 THEN 'cancelled' WHEN rs < 0.118 THEN 'completed_with_warnings' ELSE 'completed' END AS status
  FROM d
), t AS (
  SELECT s.*, (now() AT TIME ZONE 'UTC') - CASE WHEN rs < 0.018 THEN rt * interval '1 hour'
           ELSE rt * interval '90 days' END AS created,
         CASE WHEN rs < 0.013 OR (status = 'cancelled' AND ra < 0.5) THEN 0
           WHEN status = 'failed' THEN 3 WHEN status = 'retrying' THEN 1 + (ra < 0.5)::int
           WHEN status = 'completed' THEN 1 + (ra < 0.08)::int ELSE 1 END AS attempts
  FROM s
), u AS (
  SELECT t.*, CASE WHEN attempts > 0 THEN created + re * interval '3 seconds' END AS started,
         exp(rd * 9 - 3) * interval '1 second' AS per_attempt  -- 0.05 s … 400 s, log-uniform
  FROM t
)
INSERT INTO runs (id, type, queue, status, params, domain, triggered_by, created_at, dispatched_at, started_at,
                  finished_at, next_attempt_at, attempt_count, series, max_attempts, timeout_s, error,
                  progress_done, progress_total)
SELECT md5('bench-run-' || i), (CAST(:types AS text[]))[k], (CAST(:queues AS text[]))[k], status, '{}',
       (CAST(:domains AS text[]))[k],
       CASE WHEN rw < 0.4 THEN 'scheduler'
         ELSE 'user' || lpad((1 + floor(power((rw - 0.4) / 0.6, 2) * 199))::text, 3, '0') END,
       created, created, started,
       CASE WHEN status IN ('completed', 'completed_with_warnings', 'failed', 'cancelled')
         THEN COALESCE(started, created) + attempts * per_attempt + interval '10 ms' END,
       CASE WHEN status = 'retrying' THEN created + interval '5 minutes' END,
       attempts, 1, 3, 120,
       CASE WHEN status IN ('failed', 'retrying') THEN (CAST(:errors AS text[]))[1 + floor(re * :nerrors)::int] END,
       CASE WHEN status = 'running' THEN floor(ra * 100)::int END, CASE WHEN status = 'running' THEN 100 END
FROM u
ORDER BY created  -- rows in creation order, as a live system appends them
"""
_ATTEMPTS_SQL = """
INSERT INTO run_attempts (run_id, series, number, worker, started_at, finished_at, outcome, error_class,
                          error_message, traceback)
SELECT r.id, 1, n, 'worker-' || (abs(hashtext(r.id)) % 16), r.started_at + (n - 1) * per,
       CASE WHEN NOT unfinished THEN r.started_at + n * per END,
       CASE WHEN unfinished THEN NULL WHEN failed THEN 'failed' ELSE 'completed' END,
       CASE WHEN failed THEN split_part(message, ':', 1) END,
       CASE WHEN failed THEN message END,
       CASE WHEN failed THEN E'Traceback (most recent call last):\\n  File "/srv/jobs/' || r.type
         || E'.py", line 42, in run\\n    rows = fetch(ctx)\\n' || message END
FROM runs r
CROSS JOIN LATERAL generate_series(1, r.attempt_count) AS n
CROSS JOIN LATERAL (SELECT r.status = 'running' AND n = r.attempt_count AS unfinished,
                           (n < r.attempt_count OR r.status NOT IN ('completed', 'completed_with_warnings', 'running'))
                             AS failed,
                           COALESCE(r.error, 'ConnectionError: connection reset by peer') AS message,
                           COALESCE((r.finished_at - r.started_at - interval '10 ms') / r.attempt_count,
                                    interval '2 seconds') AS per) AS a
WHERE r.attempt_count > 0
ORDER BY r.started_at, n  -- ids in start order, as workers insert them
"""
_ITEMS_SQL = """
INSERT INTO run_items (run_id, key, status, message, at)
SELECT r.id, 'item-' || g, CASE WHEN g % 7 = 0 THEN 'failed' WHEN g % 11 = 0 THEN 'skipped' ELSE 'ok' END,
       CASE WHEN g % 7 = 0 THEN 'rejected by the partner: missing VAT number' END, r.finished_at
FROM runs r CROSS JOIN LATERAL generate_series(1, 1 + abs(hashtext(r.id)) % 40) AS g
WHERE r.finished_at IS NOT NULL AND abs(hashtext(r.id || 'items')) % 100 = 0
"""
_LOGS_SQL = """
INSERT INTO run_logs (run_id, at, level, message)
SELECT r.id, r.started_at + g * interval '10 ms', CASE WHEN g = 3 AND r.error IS NOT NULL THEN 'ERROR' ELSE 'INFO' END,
       CASE g WHEN 1 THEN 'started on worker' WHEN 2 THEN 'fetched the input' ELSE COALESCE(r.error, 'done') END
FROM runs r CROSS JOIN LATERAL generate_series(1, 3) AS g
WHERE r.started_at IS NOT NULL AND abs(hashtext(r.id || 'logs')) % 10 = 0
"""
_DETAIL_SQL = [
    """INSERT INTO runs (id, type, queue, status, params, domain, triggered_by, created_at, dispatched_at, started_at,
         finished_at, attempt_count, series, max_attempts, timeout_s, error, progress_done, progress_total)
       VALUES (:id, 'demo.progress', 'default', 'failed', '{"steps": 200, "step_seconds": 0.1}', NULL, 'user001',
         now() AT TIME ZONE 'UTC' - interval '2 hours', now() AT TIME ZONE 'UTC' - interval '2 hours',
         now() AT TIME ZONE 'UTC' - interval '2 hours', now() AT TIME ZONE 'UTC' - interval '1 hour', 3, 1, 3, 120,
         :error, 140, 200)""",
    """INSERT INTO run_attempts (run_id, series, number, worker, started_at, finished_at, outcome, error_class,
         error_message, traceback)
       SELECT :id, 1, n, 'worker-' || n, now() AT TIME ZONE 'UTC' - interval '2 hours' + n * interval '10 minutes',
         now() AT TIME ZONE 'UTC' - interval '2 hours' + n * interval '15 minutes', 'failed', 'ConnectionError',
         :error, repeat(E'  File "/srv/jobs/demo.py", line 7, in progress\\n    step(ctx)\\n', 20)
       FROM generate_series(1, 3) AS n""",
    """INSERT INTO run_logs (run_id, at, level, message)
       SELECT :id, now() AT TIME ZONE 'UTC' - interval '2 hours' + g * interval '10 seconds',
         CASE WHEN g % 50 = 0 THEN 'WARNING' ELSE 'INFO' END, 'step ' || g || ' of 200 done'
       FROM generate_series(1, 200) AS g""",
    """INSERT INTO run_items (run_id, key, status, message, at)
       SELECT :id, 'customer-' || g, CASE WHEN g % 5 = 0 THEN 'failed' ELSE 'ok' END,
         CASE WHEN g % 5 = 0 THEN 'no billing address' END, now() AT TIME ZONE 'UTC' - interval '1 hour'
       FROM generate_series(1, 50) AS g""",
]


def load(engine: Engine, n: int) -> None:
    """Fills the record server side; prints how long each table took."""
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("runs", _RUNS_SQL, {"n": n, "ntypes": len(TYPES), "types": TYPES, "queues": TYPE_QUEUES,
                             "domains": TYPE_DOMAINS, "errors": ERRORS, "nerrors": len(ERRORS)}),
        ("run_attempts", _ATTEMPTS_SQL, {}),
        ("run_items", _ITEMS_SQL, {}),
        ("run_logs", _LOGS_SQL, {}),
    ]  # fmt: skip
    for table, sql, params in steps:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
            conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            rows = conn.execute(text(sql), params).rowcount
        print(f"  {table}: {rows:,} rows in {time.perf_counter() - started:.1f}s")
    with engine.begin() as conn:
        for sql in _DETAIL_SQL:
            conn.execute(text(sql), {"id": DETAIL_RUN, "error": ERRORS[0]})
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f}s")


@dataclass(frozen=True)
class Combo:
    name: str
    filters: RunFilter
    query: dict[str, str]  # the same filter as URL parameters


def combos(now: datetime) -> list[Combo]:
    day_ago, week_ago = now - timedelta(hours=24), now - timedelta(days=7)
    x = TYPES[9]
    return [
        Combo("no filter", RunFilter(), {}),
        Combo("status=failed", RunFilter(statuses=("failed",)), {"status": "failed"}),
        Combo(f"type={x}", RunFilter(types=(x,)), {"type": x}),
        Combo(
            f"type={x} + status=failed", RunFilter(types=(x,), statuses=("failed",)), {"type": x, "status": "failed"}
        ),
        Combo("domain=hr", RunFilter(domain="hr"), {"domain": "hr"}),
        Combo("triggered_by=user042", RunFilter(triggered_by="user042"), {"triggered_by": "user042"}),
        Combo("queue=bulk", RunFilter(queue="bulk"), {"queue": "bulk"}),
        Combo("last 24 h", RunFilter(created_from=day_ago), {"created_from": day_ago.isoformat()}),
        Combo("q='timed out'", RunFilter(text="timed out"), {"q": "timed out"}),
        Combo(
            "status=failed + domain=sales + last 7 d",
            RunFilter(statuses=("failed",), domain="sales", created_from=week_ago),
            {"status": "failed", "domain": "sales", "created_from": week_ago.isoformat()},
        ),
    ]


def measure(fn: Callable[[], Any], repeat: int, warmups: int = 3) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    for _ in range(warmups):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=20)[-1]


@contextmanager
def throwaway_database(admin_url: str, keep: bool) -> Iterator[str]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"jobyard_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Web:
    """The Flask test client, logged in as an admin the way a browser does (CSRF token from a page)."""

    def __init__(self, app: Jobyard, config: dict[str, Any] | None = None) -> None:
        self.client = create_app(app, config).test_client()
        match = CSRF_META.search(self.client.get("/login").get_data(as_text=True))
        if match is None:
            raise SystemExit("no CSRF token on the login page")
        form = {"username": ADMIN, "password": PASSWORD, "csrf_token": match.group(1)}
        if self.client.post("/login", data=form).status_code != 302:
            raise SystemExit("the bench admin could not log in")

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        response = self.client.get(path, query_string=query or {})
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {query} answered {response.status_code}")
        return response

    def unavailable(self, path: str, must_contain: str) -> str | None:
        """None when the route serves real content; else why it is not timed."""
        response = self.client.get(path)
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        return None if must_contain in response.get_data(as_text=True) else "placeholder"


class Table:
    def __init__(self, repeat: int) -> None:
        self.repeat = repeat
        self.misses: list[str] = []
        print("| read | variant | p50 ms | p95 ms | target p95 | verdict |")
        print("|---|---|--:|--:|--:|---|")

    def time(self, read: str, variant: str, fn: Callable[[], Any], target_ms: float, repeat: int = 0) -> None:
        p50, p95 = measure(fn, repeat or self.repeat)
        verdict = "PASS" if p95 <= target_ms else "MISS"
        if verdict == "MISS":
            self.misses.append(f"{read} / {variant}")
        print(f"| {read} | {variant} | {p50:.1f} | {p95:.1f} | {target_ms:.0f} | {verdict} |", flush=True)

    def skip(self, read: str, variant: str, why: str) -> None:
        print(f"| {read} | {variant} | - | - | - | not timed: {why} |", flush=True)


def bench_combo(app: Jobyard, web: Web, table: Table, combo: Combo, html: bool, api: bool) -> None:
    def direct(cursor: str | None = None) -> Any:
        return page_of_runs(app.engine, combo.filters, cursor=cursor)

    first = direct()
    expected = [r["id"] for r in first.runs]
    table.time(combo.name, "page_of_runs p1", direct, LIST_TARGET_MS)
    if first.next_cursor:
        table.time(combo.name, "page_of_runs p2", lambda: direct(first.next_cursor), LIST_TARGET_MS)
    if html:
        page = web.get("/runs", combo.query).get_data(as_text=True)
        if not all(run_id in page for run_id in expected):
            print(f"  !! {combo.name}: GET /runs does not show the runs page_of_runs finds", flush=True)
        table.time(combo.name, "GET /runs p1", lambda: web.get("/runs", combo.query), LIST_TARGET_MS)
        older = CURSOR_LINK.search(page.replace("&amp;", "&"))
        if older:
            query = {**combo.query, "cursor": unquote(older.group(1))}
            table.time(combo.name, "GET /runs p2", lambda: web.get("/runs", query), LIST_TARGET_MS)
    if api:
        body = web.get("/api/v1/runs", combo.query).get_json()
        if [r["id"] for r in body["runs"]] != expected:
            print(f"  !! {combo.name}: GET /api/v1/runs answers other runs than page_of_runs", flush=True)
        table.time(combo.name, "GET /api/v1/runs p1", lambda: web.get("/api/v1/runs", combo.query), LIST_TARGET_MS)
        if body.get("next_cursor"):
            query = {**combo.query, "cursor": body["next_cursor"]}
            table.time(combo.name, "GET /api/v1/runs p2", lambda: web.get("/api/v1/runs", query), LIST_TARGET_MS)


def bench_lists(app: Jobyard, web: Web, table: Table) -> None:
    newest = page_of_runs(app.engine, RunFilter(), limit=1).runs[0]["id"]
    page_state, api_state = web.unavailable("/runs", newest), web.unavailable("/api/v1/runs", newest)
    for combo in combos(datetime.now(UTC)):
        bench_combo(app, web, table, combo, page_state is None, api_state is None)
    for path, state in (("/runs", page_state), ("/api/v1/runs", api_state)):
        if state is not None:
            table.skip("every list", f"GET {path}", state)
    nothing = RunFilter(text="no-such-text")
    table.time(
        "(extra) q matching no run", "page_of_runs p1", lambda: page_of_runs(app.engine, nothing), LIST_TARGET_MS, 3
    )


def bench_detail(app: Jobyard, web: Web, table: Table) -> None:
    detail = run_detail(app.engine, DETAIL_RUN)
    if detail is None or len(detail["logs"]) != 200 or len(detail["attempt_history"]) != 3:
        raise SystemExit("the detail run was not loaded as planned (200 log lines, 3 attempts)")
    table.time("run detail", "jobs.queries.run_detail", lambda: run_detail(app.engine, DETAIL_RUN), DETAIL_TARGET_MS)
    for path in (f"/runs/{DETAIL_RUN}", f"/api/v1/runs/{DETAIL_RUN}"):
        variant = f"GET {path.replace(DETAIL_RUN, '<id>')}"
        state = web.unavailable(path, "step 200 of 200")
        if state is None:
            table.time("run detail", variant, partial(web.get, path), DETAIL_TARGET_MS)
        else:
            table.skip("run detail", variant, state)


def bench_metrics(app: Jobyard, table: Table) -> None:
    table.time(
        "/metrics", "SQL refresh, cold (a new process)", lambda: read_sql_figures(app), METRICS_COLD_TARGET_MS, 5
    )
    folded = AttemptFigures()
    read_sql_figures(app, folded)
    table.time(
        "/metrics",
        "SQL refresh, settled attempts folded",
        lambda: read_sql_figures(app, folded),
        METRICS_COLD_TARGET_MS,
        10,
    )
    web = Web(app, {TTL_CONFIG_KEY: 3600.0})
    table.time("/metrics", "GET /metrics (cached)", lambda: web.get("/metrics"), METRICS_CACHED_TARGET_MS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test", help="admin URL")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5", help="FLUSHDB'd at start")
    parser.add_argument("--repeat", type=int, default=30, help="timed repetitions per read, after 3 warm-ups")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL: the record is filled with PostgreSQL SQL")
    with (
        tempfile.TemporaryDirectory(prefix="jobyard-dash-bench-") as tmp,
        throwaway_database(args.database_url, args.keep) as database_url,
    ):
        settings = Settings(data_dir=Path(tmp), database_url=database_url, redis_url=args.redis_url, secret_key="bench")
        with Jobyard(settings) as app:
            app.redis.flushdb()
            upgrade(app.engine)
            print("## machine")
            for fact in machine_facts(app):
                print(f"- {fact}")
            print(f"\n## loading {args.runs:,} runs")
            load(app.engine, args.runs)
            add_user(app.engine, ADMIN, PASSWORD, "admin", by="bench")
            print(f"\n## results ({args.repeat} timed repetitions after 3 warm-ups)\n")
            table = Table(args.repeat)
            web = Web(app)
            bench_lists(app, web, table)
            bench_detail(app, web, table)
            bench_metrics(app, table)
            print(f"\nmisses: {', '.join(table.misses) or 'none'}")
            print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
            if args.keep:
                print(f"kept: {database_url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
