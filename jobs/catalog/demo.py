"""Demo job types used by the README and the tests."""

from __future__ import annotations

import time

from jobs.context import JobContext
from jobs.registry import Param, job_type


class DemoFailure(RuntimeError):
    pass


@job_type("demo.noop", title="No-op", description="Does nothing; measures the platform's own cost.")
def noop(ctx: JobContext) -> None:
    return None


@job_type(
    "demo.sleep",
    title="Sleep",
    description="Sleeps for the given number of seconds.",
    params=[Param("seconds", float, default=1.0, help="how long to sleep, in seconds", minimum=0, maximum=3600)],
    backoff_base_s=1.0,
)
def sleep(ctx: JobContext, seconds: float) -> dict[str, float]:
    deadline = time.monotonic() + seconds
    # In short naps, so that a cancel is noticed within a fraction of a second.
    while (left := deadline - time.monotonic()) > 0:
        ctx.check_cancelled()
        time.sleep(min(left, 0.1))
    return {"slept_s": seconds}


@job_type(
    "demo.fail",
    title="Fail, then succeed",
    description="Raises on its first `times` attempts, then completes.",
    params=[Param("times", int, default=1, help="how many attempts fail before one succeeds", minimum=0, maximum=100)],
    backoff_base_s=1.0,
)
def fail(ctx: JobContext, times: int) -> dict[str, int]:
    if ctx.attempt <= times:
        raise DemoFailure(f"planned failure {ctx.attempt} of {times}")
    return {"succeeded_on_attempt": ctx.attempt}


@job_type(
    "demo.progress",
    title="Progress",
    description="Logs a line and reports progress at each step.",
    params=[
        Param("steps", int, default=10, help="number of steps", minimum=0, maximum=100_000),
        Param("step_seconds", float, default=0.2, help="time each step takes, in seconds", minimum=0, maximum=60),
    ],
)
def progress(ctx: JobContext, steps: int, step_seconds: float) -> dict[str, int]:
    ctx.progress(0, steps)
    for step in range(1, steps + 1):
        time.sleep(step_seconds)
        ctx.info(f"step {step} of {steps}")
        ctx.progress(step, steps)
    return {"steps": steps}
