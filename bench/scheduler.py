"""Scheduler latency: N one-shot schedules fall due together; how late are their runs? Prints figures.

    python bench/scheduler.py [--n 10000] [--database-url URL] [--schedulers 1] [--create api|bulk]

Defaults: a fresh SQLite file in a temp dir, Redis DB 11 (FLUSHDB'd). A PostgreSQL URL gets a throwaway
database, dropped at the end. Schedules are one per job type: bench/sched_types.py declares 10,000 no-op
types, here and in every scheduler. Variants: all N due at the same second; spread over one minute
(due = T0 + (i % 60) s, T0 a whole minute). Schedules are created (timed), then S `jobyard scheduler`
processes start before the due time; no workers. Delay = runs.created_at − the due time in the run's
idempotency key (``schedule:<id>:<due>``); "vis" = first 0.1 s poll that saw the run committed − due.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)  # not bench/: there this very file would shadow the `scheduler` package

from sqlalchemy import Engine, create_engine, func, insert, select, text  # noqa: E402

from bench.sched_types import TYPES  # noqa: E402
from bench.throughput import machine_facts, provisioned_database  # noqa: E402
from core.app import Jobyard  # noqa: E402
from core.db import utcnow  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.settings import Settings  # noqa: E402
from jobs.models import runs_table as runs  # noqa: E402
from scheduler import schedules, triggers  # noqa: E402
from scheduler.models import schedules_table  # noqa: E402

MODULE = "bench.sched_types"
POLL_S = 0.1
Proc = subprocess.Popen[bytes]
HEADER = "| due | DB | S | N | create | runs | min | p50 | p99 | max | vis p50 | vis p99 | dup | unfired | misfires |"
STARTUP_MARGIN_S = 20.0  # scheduler start-up (10,000 types to import, a full resync) before the due time


@dataclass
class Outcome:
    variant: str
    create_s: float
    delays_ms: list[float]  # sorted: created_at − due
    visible_ms: list[float]  # sorted: first seen committed − due
    duplicates: int
    unfired: int
    misfires: int


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, max(0, math.ceil(p * len(values)) - 1))] if values else float("nan")


def wipe(app: Jobyard) -> None:
    app.redis.flushdb()
    with app.engine.begin() as conn:
        for table in ("run_logs", "run_attempts", "runs", "schedules"):
            conn.execute(text(f"DELETE FROM {table}"))


def create(app: Jobyard, dues: list[datetime], mode: str) -> float:
    """Creates one `at` schedule per due time (type i gets dues[i]); returns the seconds it took."""
    started = time.perf_counter()
    if mode == "api":
        for name, due in zip(TYPES, dues, strict=False):
            schedules.set_schedule(app, name, triggers.at(due), by="bench")
        return time.perf_counter() - started
    now = utcnow()
    rows = []
    for name, due in zip(TYPES, dues, strict=False):
        trigger = triggers.at(due)
        rows.append(
            {"type": name, "params": {}, "trigger_kind": trigger.kind, "trigger_spec": trigger.spec,
             "timezone": trigger.timezone, "mode": "scheduled", "next_run_at": trigger.first_due(now),
             "created_at": now, "changed_at": now, "changed_by": "bench", "misfires": 0}
        )  # fmt: skip
    with app.engine.begin() as conn:
        conn.execute(insert(schedules_table), rows)
    app.clock.sync(schedules.list_all(app))  # the production path that writes rq-scheduler's entries
    return time.perf_counter() - started


def plan(app: Jobyard, n: int, mode: str, spread: bool) -> tuple[list[datetime], float]:
    """Due times far enough ahead for creation plus scheduler start-up; creation is timed on a sample."""
    wipe(app)
    sample = min(n, 200)
    per_schedule = create(app, [utcnow() + timedelta(days=1)] * sample, mode) / sample
    wipe(app)
    earliest = utcnow() + timedelta(seconds=n * per_schedule * 2 + STARTUP_MARGIN_S)
    t0 = earliest.replace(microsecond=0) + timedelta(seconds=1)
    if spread:  # the next whole minute, so that every due time falls within that one minute
        t0 = t0.replace(second=0) + timedelta(minutes=1)
    return [t0 + timedelta(seconds=(i % 60) if spread else 0) for i in range(n)], per_schedule


def start_schedulers(args: argparse.Namespace, env: dict[str, str], log: TextIO, tag: str) -> list[Proc]:
    """`jobyard scheduler` processes; under cProfile (stopped by SIGTERM, it still writes) with --profile."""
    procs = []
    for i in range(args.schedulers):
        profile = ["-m", "cProfile", "-o", str(args.profile / f"{tag}-{i}.prof")] if args.profile else []
        command = [sys.executable, *profile, "-m", "core.cli", "scheduler"]
        procs.append(subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
    return procs


def stop(procs: list[Proc]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print(f"  !! scheduler {proc.pid} ignored SIGTERM; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


def count_runs(observer: Engine) -> int:
    with observer.connect() as conn:
        return int(conn.execute(select(func.count()).where(runs.c.schedule_id.is_not(None))).scalar_one())


def analyse(observer: Engine, n: int, samples: list[tuple[float, int]]) -> tuple[list[float], list[float], int, int]:
    with observer.connect() as conn:
        rows = conn.execute(
            select(runs.c.schedule_id, runs.c.idempotency_key, runs.c.created_at)
            .where(runs.c.schedule_id.is_not(None))
            .order_by(runs.c.created_at)
        ).all()
    dues = [datetime.fromisoformat(r.idempotency_key.split(":", 2)[2]) for r in rows]
    delays = sorted((r.created_at - due).total_seconds() * 1000 for r, due in zip(rows, dues, strict=True))
    per_firing = Counter((r.schedule_id, due) for r, due in zip(rows, dues, strict=True))
    duplicates = sum(c - 1 for c in per_firing.values() if c > 1)
    unfired = n - len({r.schedule_id for r in rows})
    # The k-th run (by created_at) became visible at the first poll that counted at least k runs.
    visible, s = [], 0
    for k, due in enumerate(dues, start=1):
        while s < len(samples) and samples[s][1] < k:
            s += 1
        if s < len(samples):
            visible.append((samples[s][0] - due.timestamp()) * 1000)
    return delays, sorted(visible), duplicates, unfired


def run_variant(app: Jobyard, args: argparse.Namespace, env: dict[str, str], log: TextIO, spread: bool) -> Outcome:
    variant = "spread over 1 min" if spread else "same second"
    dues, per_schedule = plan(app, args.n, args.create, spread)
    print(f"  {variant}: due {min(dues):%T}-{max(dues):%T} UTC (creation sampled: {per_schedule * 1e3:.1f} ms each)")
    create_s = create(app, dues, args.create)
    print(f"  created {args.n} schedules via {args.create} in {create_s:.1f}s")
    upgrade(app.engine)  # again: a migration added to the repo meanwhile would make the schedulers refuse to start
    procs = start_schedulers(args, env, log, "spread" if spread else "same")
    observer = create_engine(app.settings.resolved_database_url)  # plain engine: no BEGIN IMMEDIATE on reads
    try:
        deadline = time.time() + 120
        while len(app.redis.keys("rq:scheduler_instance:*")) < args.schedulers and time.time() < deadline:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(POLL_S)
        print(f"  {args.schedulers} scheduler(s) ready {min(dues).timestamp() - time.time():.1f}s before the due time")
        samples: list[tuple[float, int]] = []
        deadline = max(dues).timestamp() + 120 + args.n / 50
        while time.time() < deadline and not any(p.poll() is not None for p in procs):
            samples.append((time.time(), count_runs(observer)))
            if samples[-1][1] >= args.n:
                break
            time.sleep(POLL_S)
        if not samples or samples[-1][1] < args.n:
            got, codes = samples[-1][1] if samples else 0, [p.poll() for p in procs]
            print(f"  !! stopped waiting at {got}/{args.n} runs; scheduler exit codes {codes}; log:", file=sys.stderr)
            log.flush()
            for line in Path(log.name).read_text().splitlines()[-15:]:
                print(f"     {line}", file=sys.stderr)
    finally:
        stop(procs)
    delays, visible, duplicates, unfired = analyse(observer, args.n, samples)
    with observer.connect() as conn:
        misfires = int(conn.execute(select(func.coalesce(func.sum(schedules_table.c.misfires), 0))).scalar_one())
    observer.dispose()
    return Outcome(variant, create_s, delays, visible, duplicates, unfired, misfires)


def print_table(outcomes: list[Outcome], backend: str, args: argparse.Namespace) -> None:
    print(f"{HEADER}\n|---|---|{'--:|' * (HEADER.count('|') - 3)}")
    for o in outcomes:
        d, v = o.delays_ms, o.visible_ms
        nums = (d[0], pct(d, 0.5), pct(d, 0.99), d[-1], pct(v, 0.5), pct(v, 0.99)) if d else ()
        ms = [f"{x:,.0f} ms" for x in nums] or ["-"] * 6
        cells = [o.variant, backend, args.schedulers, args.n, f"{o.create_s:.1f}s ({args.create})", len(d), *ms]
        print(f"| {' | '.join(map(str, [*cells, o.duplicates, o.unfired, o.misfires]))} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help=f"schedules (at most {len(TYPES)})")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="FLUSHDB'd at start")
    parser.add_argument("--schedulers", type=int, default=1, help="scheduler processes")
    parser.add_argument("--create", choices=("api", "bulk"), default="api", help="set_schedule, or insert + sync")
    parser.add_argument("--variant", choices=("same", "spread", "both"), default="both")
    parser.add_argument("--profile", type=Path, default=None, help="dir for cProfile output of each scheduler")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    if not 0 < args.n <= len(TYPES):
        parser.error(f"--n must be between 1 and {len(TYPES)}")
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="jobyard-sched-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with provisioned_database(args.database_url, tmp) as database_url, open(tmp / "scheduler.log", "w") as log:
            settings = Settings(
                data_dir=tmp / "var", database_url=database_url, redis_url=args.redis_url, job_modules=(MODULE,)
            )
            with Jobyard(settings) as app:
                upgrade(app.engine)
                backend = app.engine.dialect.name
                print("## machine")
                commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True)
                for fact in [*machine_facts(app), f"jobyard commit: {commit.stdout.decode().strip()}"]:
                    print(f"- {fact}")
                env = {**os.environ, **app.child_env(), "JOBYARD_JOB_MODULES": MODULE, "JOBYARD_LOG_LEVEL": "WARNING"}
                print("\n## running")
                for spread in {"same": [False], "spread": [True], "both": [False, True]}[args.variant]:
                    outcomes.append(run_variant(app, args, env, log, spread))
                wipe(app)
            log.flush()
            lines = (tmp / "scheduler.log").read_text().splitlines()
        print("\n## results\n")
        print_table(outcomes, backend, args)
        problems = [line for line in lines if any(w in line for w in ("ERROR", "Error", "Traceback", "WARNING"))]
        print(
            "\nNotes:\n- min/p50/p99/max: runs.created_at − due time (created_at is stamped when the firing batch is"
            " enqueued, before its commit).\n- vis: first 0.1 s poll that counted the run committed − its due"
            f" time.\n- scheduler output: {len(lines)} log lines, {len(problems)} warnings/errors."
        )
        for line in problems[:10]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
