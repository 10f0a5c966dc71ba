"""Ten thousand no-op job types for bench/scheduler.py: schedules are one per job type.

Loaded through JOBYARD_JOB_MODULES=bench.sched_types, in the benchmark and in every scheduler it starts.
"""

from __future__ import annotations

from jobs.context import JobContext
from jobs.registry import job_type

COUNT = 10_000
TYPES = [f"bench.sched_{n}" for n in range(COUNT)]


def _noop(ctx: JobContext) -> None:
    return None


for _name in TYPES:
    job_type(_name, title=_name)(_noop)
