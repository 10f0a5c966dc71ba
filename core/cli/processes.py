"""`jobyard db upgrade|worker|scheduler|web|up`: the long-running processes and the schema."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

import click

from core import defaults
from core.cli.base import CliError, app_from, echo_json, json_option, with_app

if TYPE_CHECKING:
    from core.app import Jobyard


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@json_option
def db_upgrade(revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import OperationalError

    from core.migrate import current_revision, upgrade

    app = app_from(click.get_current_context())
    try:
        upgrade(app.engine, revision)
        now = current_revision(app.engine)
    except OperationalError as exc:
        raise CliError(f"database error: {exc.orig}") from None
    except CommandError as exc:  # e.g. an unknown revision
        raise CliError(str(exc)) from None
    database = app.engine.url.render_as_string(hide_password=True)
    if as_json:
        echo_json({"revision": now, "database": database})
    else:
        click.echo(f"database at {revision} ({database})")


def _queue_list(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",") if q.strip()]
    if not queues:
        raise CliError("--queues needs at least one queue name")
    return queues


@click.command()
@click.option("--queues", default=defaults.DEFAULT_QUEUE, show_default=True, help="Comma-separated queue names.")
@click.option("--processes", default=defaults.DEFAULT_WORKER_PROCESSES, show_default=True, type=click.IntRange(1, 256))
@click.option("--burst", is_flag=True, help="Stop when no run on these queues is left to do.")
@click.option("--instance", help="Serve this named instance too; at start, settle the runs it left running.")
@with_app
def worker(app: Jobyard, queues: str, processes: int, burst: bool, instance: str | None) -> None:
    """Run worker processes (scale out: any number, on any host)."""
    from workers.supervisor import Supervisor

    logging.getLogger().setLevel(logging.INFO)
    sys.exit(Supervisor(app, _queue_list(queues), processes, burst=burst, instance=instance).run())


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=defaults.WEB_WORKERS, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=defaults.WEB_THREADS, show_default=True, type=click.IntRange(1, 64))
@with_app
def web(app: Jobyard, host: str, port: int, workers: int, threads: int) -> None:
    """Run the web process (dashboard, API, rq-dashboard, metrics) under gunicorn."""
    from dashboard.server import serve

    if not app.settings.secret_key:
        raise CliError("the web process needs JOBYARD_SECRET_KEY (it signs sessions and CSRF tokens)")
    # The workers build their own app from the environment after the fork; pass on what this process resolved.
    os.environ.update(app.child_env())
    control_socket = app.settings.data_dir / "run" / f"gunicorn-{port}.ctl"
    serve(host, port, workers=workers, threads=threads, control_socket=control_socket)


@click.command()
@with_app
def scheduler(app: Jobyard) -> None:
    """Run the scheduler process."""
    from scheduler.service import run_scheduler

    logging.getLogger().setLevel(logging.INFO)
    run_scheduler(app)


@click.command()
@click.option("--processes", default=defaults.DEFAULT_WORKER_PROCESSES, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo/--no-demo", default=True, show_default=True, help="Enqueue the demo runs.")
@click.option("--until-done", is_flag=True, help="Exit once the demo runs have finished.")
@click.option("--port", default=defaults.WEB_PORT, show_default=True, type=click.IntRange(1, 65535))
def up(processes: int, demo: bool, until_done: bool, port: int) -> None:
    """Bring the whole system up: Redis, database, workers, scheduler, web, demo runs."""
    from core.up import bring_up

    app = app_from(click.get_current_context())
    sys.exit(bring_up(app, processes=processes, demo=demo, until_done=until_done, port=port))
