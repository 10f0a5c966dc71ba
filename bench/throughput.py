"""Throughput of Jobyard against plain RQ on the same Redis. Prints figures; it is not a pass/fail test.

    python bench/throughput.py [--n 2000] [--database-url URL] [--redis-url URL] [--workers 2]

Defaults: a fresh SQLite file in a temp dir, Redis DB 14 (FLUSHDB'd: it is a benchmark DB). With a
PostgreSQL URL a throwaway database ``jobyard_bench_<random>`` is created there and dropped at the end.
Each drain enqueues everything first, then starts W worker processes at once and reports the wall time
from their start until the last job is done: process start-up is included, for both sides alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# `python bench/throughput.py` puts bench/ first on the path, where scheduler.py would shadow the package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import rq  # noqa: E402
from rq import Queue  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core.app import Jobyard  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.settings import Settings  # noqa: E402
from jobs.enqueue import EnqueueRequest, enqueue, enqueue_many  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
JOBYARD_QUEUE = "default"  # the declared queue of demo.noop and demo.sleep
PLAIN_QUEUE = "plain"
RESULT_TTL_S = 500  # what Jobyard gives RQ (core.defaults.RQ_RESULT_TTL_S), for a like-for-like baseline
POLL_S = 0.02


@dataclass
class Row:
    measure: str
    jobyard: float  # jobs/s
    plain: float
    detail: str = ""


@contextmanager
def provisioned_database(url: str | None, tmp: Path) -> Iterator[str]:
    """The database URL to use: a fresh SQLite file, the given SQLite URL, or a throwaway PostgreSQL DB."""
    if url is None:
        yield f"sqlite:///{tmp / 'bench.sqlite3'}"
        return
    if url.startswith("sqlite"):
        yield url
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"jobyard_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def reset(app: Jobyard) -> None:
    """Empties Redis and the run tables so that every phase starts from the same state."""
    app.redis.flushdb()
    with app.engine.begin() as conn:
        for table in ("run_logs", "run_attempts", "runs", "workers", "refused_jobs"):
            conn.execute(text(f"DELETE FROM {table}"))


def scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def spawn(commands: list[list[str]], env: dict[str, str], log: TextIO) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(c, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT) for c in commands]


def drain(
    commands: list[list[str]], env: dict[str, str], log: TextIO, done: Callable[[], int], n: int, what: str
) -> tuple[float, int]:
    """Starts the worker processes together, polls `done()` until it reaches n; returns (wall s, done)."""
    timeout_s, what = 120 + n, f"{what} ({commands[0][2]})"  # e.g. "no-op (workers.process)"
    started = time.perf_counter()
    procs = spawn(commands, env, log)
    finished = 0
    while True:
        finished = done()
        if finished >= n:
            break
        if all(p.poll() is not None for p in procs):
            finished = done()  # the last job may have landed between the two checks
            if finished < n:
                print(f"  !! {what}: all workers exited with {finished}/{n} done", file=sys.stderr)
            break
        if time.perf_counter() - started > timeout_s:
            print(f"  !! {what}: timed out with {finished}/{n} done", file=sys.stderr)
            break
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - started
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    codes = [p.returncode for p in procs]
    if any(codes):
        print(f"  !! {what}: worker exit codes {codes}", file=sys.stderr)
    return elapsed, finished


class Bench:
    def __init__(self, app: Jobyard, workers: int, log: TextIO, plain_log_level: str) -> None:
        self.app = app
        # Polls and checks go through a plain engine: app.engine opens every SQLite transaction, reads
        # included, with BEGIN IMMEDIATE (core/db.py), so polling through it would take the write lock.
        self.observer = create_engine(app.settings.resolved_database_url)
        self.workers = workers
        self.log = log
        self.plain_log_level = plain_log_level
        self.plain_queue = Queue(PLAIN_QUEUE, connection=app.redis, serializer=JSONSerializer)
        self.jobyard_env = {**os.environ, **app.child_env(), "JOBYARD_LOG_LEVEL": plain_log_level}
        self.plain_env = dict(os.environ)  # `-m bench.plain_worker` from cwd=REPO finds bench.plain_jobs

    def count(self, sql: str) -> int:
        return int(scalar(self.observer, sql))

    def plain_enqueue_many(self, func: str, n: int, args: list[Any] | None = None) -> None:
        data = [Queue.prepare_data(func, args=args, result_ttl=RESULT_TTL_S, timeout=120) for _ in range(n)]
        self.plain_queue.enqueue_many(data)

    def jobyard_commands(self) -> list[list[str]]:
        return [
            [sys.executable, "-m", "workers.process", "--name", f"bench-{i}", "--queues", JOBYARD_QUEUE, "--burst"]
            for i in range(self.workers)
        ]

    def plain_commands(self) -> list[list[str]]:
        base = [sys.executable, "-m", "bench.plain_worker", "--queues", PLAIN_QUEUE, "--redis-url", self.app.redis_url]
        return [[*base, "--log-level", self.plain_log_level, "--name", f"plain-{i}"] for i in range(self.workers)]

    def enqueue_single(self, n: int) -> Row:
        reset(self.app)
        # Until every run is in Redis, not only committed: the push runs in the background.
        jobyard = timed(lambda: ([enqueue("demo.noop", app=self.app) for _ in range(n)], self.app.flush(120)))
        options: dict[str, Any] = {"result_ttl": RESULT_TTL_S, "job_timeout": 120}
        plain = timed(lambda: [self.plain_queue.enqueue("bench.plain_jobs.noop", **options) for _ in range(n)])
        return Row(f"enqueue, single (N={n})", rate(n, jobyard), rate(n, plain), f"{jobyard:.2f}s vs {plain:.2f}s")

    def enqueue_bulk(self, n: int) -> Row:
        reset(self.app)
        jobyard = timed(lambda: (enqueue_many([EnqueueRequest("demo.noop")] * n, app=self.app), self.app.flush(120)))
        plain = timed(lambda: self.plain_enqueue_many("bench.plain_jobs.noop", n))
        return Row(f"enqueue, bulk (N={n})", rate(n, jobyard), rate(n, plain), f"{jobyard:.2f}s vs {plain:.2f}s")

    def jobyard_done(self) -> int:
        return self.count("SELECT count(*) FROM runs WHERE status = 'completed'")

    def plain_done(self) -> int:
        return int(self.app.redis.zcard(self.plain_queue.finished_job_registry.key))

    def verify_jobyard(self, n: int) -> str:
        completed = self.count("SELECT count(*) FROM run_attempts WHERE outcome = 'completed'")
        distinct = self.count("SELECT count(DISTINCT run_id) FROM run_attempts WHERE outcome = 'completed'")
        attempts = self.count("SELECT count(*) FROM run_attempts")
        open_runs = self.count("SELECT count(*) FROM runs WHERE status <> 'completed'")
        ok = completed == distinct == attempts == n and open_runs == 0
        return (
            f"{'OK' if ok else 'FAILED'}: {completed} completed attempts over {distinct} runs, "
            f"{attempts} attempts in all, {open_runs} runs not completed (want {n}/{n}/{n}/0)"
        )

    def verify_plain(self, n: int) -> str:
        failed = int(self.app.redis.zcard(self.plain_queue.failed_job_registry.key))
        finished, queued = self.plain_done(), self.plain_queue.count
        ok = finished == n and failed == 0 and queued == 0
        return f"{'OK' if ok else 'FAILED'}: {finished} finished, {failed} failed, {queued} still queued (want {n}/0/0)"

    def drain_pair(
        self, label: str, n: int, jobyard: EnqueueRequest, plain_func: str, plain_args: list[Any] | None
    ) -> Row:
        reset(self.app)
        enqueue_many([jobyard] * n, app=self.app)
        j_s, j_done = drain(self.jobyard_commands(), self.jobyard_env, self.log, self.jobyard_done, n, label)
        print(f"  check jobyard {label}: {self.verify_jobyard(n)}")
        reset(self.app)
        self.plain_enqueue_many(plain_func, n, plain_args)
        p_s, p_done = drain(self.plain_commands(), self.plain_env, self.log, self.plain_done, n, label)
        print(f"  check plain rq {label}: {self.verify_plain(n)}")
        measure = f"drain {label} (N={n}, W={self.workers})"
        return Row(measure, rate(j_done, j_s), rate(p_done, p_s), f"{j_s:.2f}s vs {p_s:.2f}s wall")

    def idle_startup(self, repeat: int = 3) -> tuple[float, float]:
        """Median wall time for W burst workers to start, find nothing and stop: the fixed cost of a drain."""

        def once(commands: list[list[str]], env: dict[str, str]) -> float:
            reset(self.app)
            return timed(lambda: [proc.wait() for proc in spawn(commands, env, self.log)])

        j = sorted(once(self.jobyard_commands(), self.jobyard_env) for _ in range(repeat))
        p = sorted(once(self.plain_commands(), self.plain_env) for _ in range(repeat))
        return j[repeat // 2], p[repeat // 2]


def machine_facts(app: Jobyard) -> list[str]:
    backend = app.engine.dialect.name
    if backend == "sqlite":
        backend += f" {sqlite3.sqlite_version} (synchronous={app.settings.sqlite_synchronous}, WAL)"
    else:
        backend += " " + str(scalar(app.engine, "SHOW server_version"))
    redis_version = app.redis.info("server").get("redis_version", "?")
    return [
        f"nproc: {os.cpu_count()}",
        f"python: {platform.python_version()} ({platform.platform()})",
        f"database backend: {backend}",
        f"redis server: {redis_version}",
        f"rq: {rq.__version__}",
    ]


def print_table(rows: list[Row]) -> None:
    print("| measure | jobyard | plain rq | ratio | wall (jobyard vs plain) |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        ratio = r.jobyard / r.plain if r.plain else float("nan")
        print(f"| {r.measure} | {r.jobyard:,.0f} jobs/s | {r.plain:,.0f} jobs/s | {ratio:.2f} | {r.detail} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="jobs per measure (bulk enqueue uses 5N)")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="FLUSHDB'd at start")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per drain")
    parser.add_argument("--plain-log-level", default="WARNING", help="log level of both kinds of worker")
    args = parser.parse_args(argv)
    n, sleep_n = args.n, max(100, args.n // 10)
    with tempfile.TemporaryDirectory(prefix="jobyard-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with provisioned_database(args.database_url, tmp) as database_url, open(tmp / "workers.log", "w") as log:
            settings = Settings(
                data_dir=tmp / "var", database_url=database_url, redis_url=args.redis_url, secret_key="bench-secret"
            )
            with Jobyard(settings) as app:
                app.redis.flushdb()
                upgrade(app.engine)
                print("## machine")
                for fact in machine_facts(app):
                    print(f"- {fact}")
                bench = Bench(app, args.workers, log, args.plain_log_level)
                print("\n## running")
                rows = [bench.enqueue_single(n)]
                print(f"  {rows[-1].measure}: done")
                rows.append(bench.enqueue_bulk(5 * n))
                print(f"  {rows[-1].measure}: done")
                rows.append(bench.drain_pair("no-op", n, EnqueueRequest("demo.noop"), "bench.plain_jobs.noop", None))
                sleep = EnqueueRequest("demo.sleep", {"seconds": 0.1})
                rows.append(bench.drain_pair("100 ms jobs", sleep_n, sleep, "bench.plain_jobs.sleep", [0.1]))
                idle_j, idle_p = bench.idle_startup()
                reset(app)
                bench.observer.dispose()
            log.flush()
            log_lines = len((tmp / "workers.log").read_text().splitlines())
        print("\n## results\n")
        print_table(rows)
        w = args.workers
        notes = [
            f"drains: wall time from starting {w} worker processes together until the last job is done; "
            "nothing subtracted: process start-up is included for both sides.",
            f"start-up + shutdown of {w} idle burst workers (no jobs, median of 3): "
            f"jobyard {idle_j:.2f}s, plain rq {idle_p:.2f}s.",
            f"100 ms ceiling with {w} workers: {w / 0.1:.0f} jobs/s.",
            f"Jobyard and plain rq workers both log at {args.plain_log_level}; "
            f"all worker output went to a log file ({log_lines} lines).",
            "each phase starts from an empty Redis DB and empty run tables.",
        ]
        print("\nNotes:\n" + "\n".join(f"- {note}" for note in notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
