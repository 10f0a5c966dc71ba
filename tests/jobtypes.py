"""Job types used only by the tests; loaded through JOBYARD_JOB_MODULES like any extra module."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jobs.context import JobContext
from jobs.registry import Param, job_type


@job_type("test.secretive", title="Secretive", params=[Param("token", str, secret=True)])
def secretive(ctx: JobContext, token: str) -> dict[str, int]:
    # Proves the worker sees the clear value while SQL and Redis only hold the sealed one.
    return {"token_length": len(token)}


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
