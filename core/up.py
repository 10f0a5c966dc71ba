"""`jobyard up`: the whole system on one machine with embedded defaults, for a first look."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from core import defaults
from core.migrate import upgrade
from dashboard.auth.users import add_user, has_users
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
SECRET_KEY_FILE = "secret.key"
ADMIN_PASSWORD_FILE = "admin-password"


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


def _start(app: Jobyard, *command: str) -> subprocess.Popen[bytes]:
    with open(app.settings.data_dir / f"{command[0]}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "core.cli", *command],
            env={**os.environ, **app.child_env()},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _write_private(path: Path, text: str) -> None:
    """Created readable by the owner only from the first byte, not chmod-ed after the fact."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def _secret_key(app: Jobyard) -> None:
    """Without JOBYARD_SECRET_KEY, a key of this installation's own, kept in the data directory."""
    if app.settings.secret_key:
        return
    path = app.settings.data_dir / SECRET_KEY_FILE
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32))
    app.settings = dataclasses.replace(app.settings, secret_key=path.read_text().strip())


def _first_admin(app: Jobyard) -> None:
    """A fresh installation gets an `admin` account with a random password, printed once and kept in a
    file only the owner can read, so that nobody logs in with a default password."""
    if has_users(app.engine):
        return
    password = secrets.token_urlsafe(12)
    add_user(app.engine, "admin", password, "admin", by="jobyard up")
    path = app.settings.data_dir / ADMIN_PASSWORD_FILE
    path.unlink(missing_ok=True)
    _write_private(path, password + "\n")
    click.echo(f"created user admin, password {password} (also in {path})")


def bring_up(app: Jobyard, *, processes: int, demo: bool, until_done: bool, port: int = defaults.WEB_PORT) -> int:
    app.settings.data_dir.mkdir(parents=True, exist_ok=True)
    _secret_key(app)
    click.echo(f"redis:    {app.redis_url}")
    click.echo(f"database: {app.engine.url.render_as_string(hide_password=True)}")
    upgrade(app.engine)
    _first_admin(app)
    worker = _start(app, "worker", "--processes", str(processes))
    scheduler = _start(app, "scheduler")
    web = _start(app, "web", "--port", str(port), "--workers", "1")
    click.echo(f"dashboard: http://127.0.0.1:{port}/ (rq-dashboard at /rq)")
    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    click.echo(
        f"{processes} worker processes, the scheduler and the web process started (logs under"
        f" {app.settings.data_dir});"
        " Ctrl-C stops everything"
    )
    run_ids = enqueue_many(DEMO_RUNS, app=app) if demo else []
    shown: dict[str, str] = {}
    try:
        while not stop.is_set() and all(p.poll() is None for p in (worker, scheduler, web)):
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
        for process in (worker, scheduler, web):
            process.send_signal(signal.SIGTERM)
        for process in (worker, scheduler, web):
            process.wait()
    if worker.returncode not in (0, -signal.SIGTERM) and not stop.is_set() and not until_done:
        return 1
    failed = [r for r in run_ids if (d := run_detail(app.engine, r)) and d["status"] != RunStatus.COMPLETED]
    if until_done and failed:
        click.echo(f"{len(failed)} demo run(s) did not complete: {', '.join(failed)}", err=True)
        return 1
    return 0
