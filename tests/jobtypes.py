"""Job types used only by the tests; loaded through JOBYARD_JOB_MODULES like any extra module."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jobs.catalog.demo import DemoFailure
from jobs.context import JobContext, PermanentFailure
from jobs.registry import Param, job_type
from scheduler import triggers


@job_type("test.secretive", title="Secretive", params=[Param("token", str, secret=True)])
def secretive(ctx: JobContext, token: str) -> dict[str, int]:
    # Proves the worker sees the clear value while SQL and Redis only hold the sealed one.
    return {"token_length": len(token)}


@job_type(
    "test.quick_to_fail",
    title="Fail, then succeed, with short gaps",
    params=[Param("times", int)],
    backoff_base_s=0.1,  # the default five attempts, with gaps of 0.1-0.8 s instead of demo.fail's 1-8 s
)
def quick_to_fail(ctx: JobContext, times: int) -> dict[str, int]:
    if ctx.attempt <= times:
        raise DemoFailure(f"planned failure {ctx.attempt} of {times}")
    return {"succeeded_on_attempt": ctx.attempt}


@job_type("test.slow", title="Slow", params=[Param("seconds", float)], timeout_s=1, max_attempts=2, backoff_base_s=0.0)
def slow(ctx: JobContext, seconds: float) -> None:
    time.sleep(seconds)


@job_type("test.count", title="Count executions", params=[Param("path", str)])
def count(ctx: JobContext, path: str) -> None:
    # One line per execution, appended atomically, so a test can see each run ran exactly once.
    with open(path, "a") as out:
        out.write(f"{ctx.run_id}\n")


@job_type("test.touch", title="Touch", params=[Param("path", str)])
def touch(ctx: JobContext, path: str) -> None:
    Path(path).touch()
    assert os.path.exists(path)


@job_type(
    "test.nightly",
    title="Nightly",
    default_schedule=triggers.cron("0 2 * * *", "Europe/Paris"),
    params=[Param("label", str, default="nightly")],
)
def nightly(ctx: JobContext, label: str) -> None:
    return None


@job_type("test.exclusive", title="Exclusive", params=[Param("seconds", float)], exclusive=True)
def exclusive(ctx: JobContext, seconds: float) -> None:
    time.sleep(seconds)


@job_type("test.stubborn", title="Stubborn", params=[Param("seconds", float)])
def stubborn(ctx: JobContext, seconds: float) -> None:
    time.sleep(seconds)  # never looks at ctx.cancelled: only a hard stop ends it


@job_type("test.follower", title="Follower")
def follower(ctx: JobContext) -> None:
    return None


def _tick(ctx: JobContext) -> None:
    return None


# Fifteen cheap types, one schedule each: schedules are per job type.
TICK_TYPES = [f"test.tick_{n}" for n in range(15)]
for _name in TICK_TYPES:
    job_type(_name, title=_name)(_tick)


@job_type("test.hourly", title="Hourly", default_schedule=triggers.interval(3600))
def hourly(ctx: JobContext) -> None:
    return None


@job_type(
    "test.items",
    title="Items",
    params=[
        Param("count", int, default=100),
        Param("fail_every", int, default=14),
        Param("dry_run", bool, default=False),
        Param("continue_on_error", bool, default=False),
    ],
    max_attempts=1,
)
def items(ctx: JobContext, count: int, fail_every: int, dry_run: bool, continue_on_error: bool) -> dict[str, int]:
    def handle(n: int) -> str:
        if fail_every and n % fail_every == 0:
            raise ValueError(f"item {n} is not importable")
        return f"imported {n}"

    return ctx.process_items(
        range(1, count + 1), handle, key=lambda n: f"item-{n}", dry_run=dry_run, continue_on_error=continue_on_error
    )


@job_type(
    "test.shared_items",
    title="Shared items",
    params=[Param("count", int, default=20), Param("gate", str), Param("hold", int, default=0)],
    max_attempts=1,
)
def shared_items(ctx: JobContext, count: int, gate: str, hold: int) -> dict[str, int]:
    """Items 1..count. Each one processed appends "<n> <run id>" to <gate>/effects (one atomic append per
    line), so that a test counts how often each item was processed; item `hold` then waits until
    <gate>/release exists, so that a test can keep it claimed while another run reaches it."""
    where = Path(gate)

    def handle(n: int) -> str:
        with open(where / "effects", "a") as out:
            out.write(f"{n} {ctx.run_id}\n")
        if n == hold:
            (where / f"holding-{ctx.run_id}").touch()
            deadline = time.monotonic() + 60
            while not (where / "release").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"item {n} was never released")
                time.sleep(0.02)
        return f"processed {n}"

    return ctx.process_items(range(1, count + 1), handle, key=lambda n: f"item-{n}")


@job_type("test.reported", title="Reported", report_to=["reports@example.org"])
def reported(ctx: JobContext) -> None:
    return None


@job_type("test.sales_sync", title="Sales directory sync", domain="sales")
def sales_sync(ctx: JobContext) -> None:
    return None


@job_type("test.hr_sync", title="HR directory sync", domain="hr")
def hr_sync(ctx: JobContext) -> None:
    return None


@job_type("test.rejecting", title="Rejecting", params=[Param("path", str)])
def rejecting(ctx: JobContext, path: str) -> None:
    raise PermanentFailure(f"path: {path} does not exist")
