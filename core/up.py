"""`jobyard up`: the whole system on one machine with embedded defaults, for a first look."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from core.migrate import upgrade
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.queries import run_detail
from jobs.status import FINAL, RunStatus

if TYPE_CHECKING:
    from core.app import Jobyard

DEMO_RUNS = (
    EnqueueRequest("demo.noop", {}, triggered_by="jobyard up"),
    EnqueueRequest("demo.progress", {"steps": 5, "step_seconds": 0.5}, triggered_by="jobyard up"),
    EnqueueRequest("demo.fail", {"times": 2}, triggered_by="jobyard up"),
    EnqueueRequest("demo.sleep", {"seconds": 2}, triggered_by="jobyard up"),
)
REFRESH_S = 0.5


def _line(detail: dict[str, Any]) -> str:
    progress = detail["progress"]
    bar = ""
    if progress["total"]:
        filled = int(20 * progress["done"] / progress["total"])
        bar = f" [{'#' * filled}{'.' * (20 - filled)}] {progress['done']}/{progress['total']}"
    retry = f" next attempt {detail['next_attempt_at'][11:19]}" if detail["next_attempt_at"] else ""
    return (
        f"{detail['id'][:8]} {detail['type']:<14} {detail['status']:<10} "
        f"attempt {detail['attempts']}/{detail['max_attempts']}{bar}{retry}"
    )


def bring_up(app: Jobyard, *, processes: int, demo: bool, until_done: bool) -> int:
    click.echo(f"redis:    {app.redis_url}")
    click.echo(f"database: {app.engine.url.render_as_string(hide_password=True)}")
    upgrade(app.engine)
    log_path = app.settings.data_dir / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as worker_log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "worker", "--processes", str(processes)],
            env={**os.environ, **app.child_env()},
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    click.echo(f"{processes} worker processes started (log: {log_path}); Ctrl-C stops everything")
    run_ids = enqueue_many(DEMO_RUNS, app=app) if demo else []
    shown: dict[str, str] = {}
    try:
        while not stop.is_set() and worker.poll() is None:
            details = [d for d in (run_detail(app.engine, r) for r in run_ids) if d is not None]
            for detail in details:
                line = _line(detail)
                if shown.get(detail["id"]) != line:
                    shown[detail["id"]] = line
                    click.echo(line)
            if until_done and all(RunStatus(d["status"]) in FINAL for d in details):
                break
            stop.wait(REFRESH_S)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait()
    if worker.returncode not in (0, -signal.SIGTERM) and not stop.is_set() and not until_done:
        return 1
    failed = [r for r in run_ids if (d := run_detail(app.engine, r)) and d["status"] != RunStatus.COMPLETED]
    if until_done and failed:
        click.echo(f"{len(failed)} demo run(s) did not complete: {', '.join(failed)}", err=True)
        return 1
    return 0
