"""`jobyard …`: the command line. Bad input exits 2 with a one-line message."""

from __future__ import annotations

import getpass
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

import click
from redis import RedisError
from sqlalchemy.exc import OperationalError, ProgrammingError

from core import defaults
from core.app import Jobyard
from core.db import utcnow
from core.settings import SettingsError
from jobs.status import RunStatus

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    exit_code = 2


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _app(ctx: click.Context) -> Jobyard:
    app = ctx.obj.get("app") if ctx.obj else None
    if app is None:
        try:
            app = Jobyard.from_env().install()
        except SettingsError as exc:
            raise CliError(str(exc)) from None
        ctx.ensure_object(dict)["app"] = app
        ctx.call_on_close(app.close)
    return app


def _check_schema(app: Jobyard) -> None:
    from core.migrate import current_revision, head_revision

    current = current_revision(app.engine)
    if current != head_revision():
        raise CliError("the database is not migrated; run `jobyard db upgrade` first")


def with_app(func: F) -> F:
    """Passes the Jobyard app built from the environment; turns infrastructure errors into one line."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        app = _app(click.get_current_context())
        try:
            _check_schema(app)
            return func(app, *args, **kwargs)
        except (OperationalError, ProgrammingError) as exc:
            raise CliError(f"database error: {exc.orig}") from None
        except RedisError as exc:
            raise CliError(f"Redis error: {exc}") from None

    return wrapper  # type: ignore[return-value]


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def cli(verbose: bool) -> None:
    """Jobyard: durable background jobs on Redis Queue."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


# -- database ------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from core.migrate import upgrade

    app = _app(click.get_current_context())
    try:
        upgrade(app.engine, revision)
    except OperationalError as exc:
        raise CliError(f"database error: {exc.orig}") from None
    click.echo(f"database at {revision} ({app.engine.url.render_as_string(hide_password=True)})")


# -- runs ----------------------------------------------------------------------------------------


def _parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"parameters are key=value, got {pair!r}")
        params[key] = value
    return params


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--at must be an ISO 8601 time, got {value!r}") from None
    return at if at.tzinfo else at.astimezone()  # a bare time is the operator's local time


@cli.command()
@click.argument("job_type")
@click.argument("params", nargs=-1)
@click.option("--queue", help="Queue to use instead of the type's own.")
@click.option("--at", "at_text", help="Run at this ISO 8601 time instead of now.")
@click.option("--triggered-by", help="Who asks for the run (default: cli:<user>).")
@click.option("--domain", help="Domain the run belongs to.")
@click.option("--json", "as_json", is_flag=True)
@with_app
def enqueue(
    app: Jobyard,
    job_type: str,
    params: tuple[str, ...],
    queue: str | None,
    at_text: str | None,
    triggered_by: str | None,
    domain: str | None,
    as_json: bool,
) -> None:
    """Enqueue a run of JOB_TYPE with key=value PARAMS; prints the run id."""
    from jobs.enqueue import EnqueueRequest, enqueue_many
    from jobs.params import InvalidJobRequest

    request = EnqueueRequest(
        job_type,
        _parse_assignments(params),
        queue,
        _parse_at(at_text),
        triggered_by or f"cli:{getpass.getuser()}",
        domain,
    )
    try:
        [run_id] = enqueue_many([request], app=app, from_text=True)
    except InvalidJobRequest as exc:
        raise CliError(str(exc)) from None
    if as_json:
        _echo_json({"id": run_id})
    else:
        click.echo(run_id)


@cli.command()
@click.option("--status", type=click.Choice([s.value for s in RunStatus]))
@click.option("--type", "type_name", help="Only runs of this job type.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
@with_app
def runs(app: Jobyard, status: str | None, type_name: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    from jobs.queries import list_runs

    rows = list_runs(app.engine, status=status, type=type_name, limit=limit)
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        click.echo(
            f"{r['id']}  {r['type']:<24} {r['status']:<24} attempts {r['attempts']}/{r['max_attempts']}"
            f"  {r['created_at']}"
        )


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@with_app
def show(app: Jobyard, run_id: str, as_json: bool) -> None:
    """Show a run: status, timings, attempts with their errors, log."""
    from jobs.queries import run_detail

    detail = run_detail(app.engine, run_id)
    if detail is None:
        raise CliError(f"no run {run_id!r}")
    if as_json:
        _echo_json(detail)
        return
    click.echo(f"run {detail['id']}  {detail['type']}  {detail['status']}")
    for key in (
        "queue",
        "params",
        "triggered_by",
        "created_at",
        "started_at",
        "finished_at",
        "next_attempt_at",
        "retried_by",
        "retried_at",
        "result",
        "error",
    ):
        if detail[key] not in (None, {}):
            click.echo(f"  {key:<16} {detail[key]}")
    progress = detail["progress"]
    if progress["total"]:
        click.echo(f"  progress         {progress['done']}/{progress['total']} {progress['message'] or ''}")
    for a in detail["attempt_history"]:
        error = f"  {a['error_class']}: {a['error_message']}" if a["error_class"] else ""
        click.echo(
            f"  attempt {a['series']}.{a['number']:<3} {a['outcome'] or 'running':<10} {a['worker']}"
            f"  {a['started_at']} → {a['finished_at'] or '…'}{error}"
        )
    for line in detail["logs"]:
        click.echo(f"  log {line['at']} {line['level']:<7} {line['message']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def types(as_json: bool) -> None:
    """List the declared job types."""
    app = _app(click.get_current_context())
    declared: list[dict[str, Any]] = [
        {
            "name": t.name,
            "title": t.title,
            "description": t.description,
            "queue": t.queue,
            "max_attempts": t.retry.max_attempts,
            "backoff_base_s": t.retry.backoff_base_s,
            "timeout_s": t.timeout_s,
            "exclusive": t.exclusive,
            "params": t.schema(),
        }
        for t in app.registry
    ]
    if as_json:
        _echo_json(declared)
        return
    for t in declared:
        params = ", ".join(t["params"]["properties"]) or "-"
        click.echo(f"{t['name']:<24} {t['title']:<24} queue={t['queue']} params: {params}")


@cli.command()
@click.argument("run_id")
@click.option("--by", help="Who retries (default: cli:<user>).")
@click.option("--json", "as_json", is_flag=True)
@with_app
def retry(app: Jobyard, run_id: str, by: str | None, as_json: bool) -> None:
    """Retry a failed or cancelled run: a new attempt series, history kept."""
    from jobs.actions import RunNotFound, RunNotRetryable, retry_run

    try:
        retry_run(app, run_id, by=by or f"cli:{getpass.getuser()}")
    except (RunNotFound, RunNotRetryable) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        _echo_json({"id": run_id, "status": "pending"})
    else:
        click.echo(f"run {run_id} queued again")


@cli.command()
@click.option("--grace", type=click.FloatRange(0), help="Seconds a fresh run is left alone (default from settings).")
@click.option("--json", "as_json", is_flag=True)
@with_app
def reconcile(app: Jobyard, grace: float | None, as_json: bool) -> None:
    """Push again what Redis lost; settle attempts of dead workers."""
    from workers.reconciler import reconcile as run_reconcile

    report = run_reconcile(app, grace_s=grace)
    if as_json:
        _echo_json(report.as_dict())
    else:
        click.echo(f"pushed again: {len(report.repushed)}, attempts of dead workers settled: {len(report.died)}")


# -- schedules -----------------------------------------------------------------------------------


@cli.group()
def schedules() -> None:
    """Plans of job types: list, show, set, enable, disable, run now."""


def _schedule_line(row: dict[str, Any]) -> str:
    return (
        f"{row['type']:<28} {row['mode']:<10} {row['trigger']:<40} next {row['next_run_at'] or '-'}"
        f"  last run {row['last_run_id'] or '-'}"
    )


def _print_schedule(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _echo_json(row)
    else:
        click.echo(_schedule_line(row))
        if row["misfires"]:
            click.echo(f"  misfires: {row['misfires']} (last {row['last_misfire_at']})")
        click.echo(f"  changed by {row['changed_by']} at {row['changed_at']}")


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_app
def schedules_list(app: Jobyard, as_json: bool) -> None:
    """List every schedule."""
    from scheduler.schedules import list_all

    rows = [r.as_dict() for r in list_all(app)]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(_schedule_line(row))


@schedules.command("show")
@click.argument("job_type")
@click.option("--json", "as_json", is_flag=True)
@with_app
def schedules_show(app: Jobyard, job_type: str, as_json: bool) -> None:
    """Show the schedule of JOB_TYPE."""
    from scheduler.schedules import ScheduleNotFound, get

    try:
        _print_schedule(get(app, job_type).as_dict(), as_json)
    except ScheduleNotFound as exc:
        raise CliError(str(exc)) from None


@schedules.command("set")
@click.argument("job_type")
@click.argument("params", nargs=-1)
@click.option("--cron", help="Cron expression, e.g. '0 2 * * *'.")
@click.option("--interval", type=int, help="Every N seconds.")
@click.option("--at", "at_text", help="Once, at this ISO 8601 time (in the past: at once).")
@click.option("--weekly", help="Weekdays and times, e.g. mon,thu@07:30.")
@click.option("--after", help="After this job type completes successfully.")
@click.option("--tz", default="UTC", show_default=True, help="Timezone of --cron and --weekly.")
@click.option("--by", help="Who changes it (default: cli:<user>).")
@click.option("--json", "as_json", is_flag=True)
@with_app
def schedules_set(
    app: Jobyard, job_type: str, params: tuple[str, ...], cron: str | None, interval: int | None,
    at_text: str | None, weekly: str | None, after: str | None, tz: str, by: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Plan JOB_TYPE with exactly one trigger; key=value PARAMS are the runs' parameters."""
    from jobs.params import InvalidJobRequest
    from scheduler import triggers
    from scheduler.schedules import set_schedule

    given = [name for name, value in
             (("--cron", cron), ("--interval", interval), ("--at", at_text), ("--weekly", weekly), ("--after", after))
             if value is not None]  # fmt: skip
    if len(given) != 1:
        raise CliError("give exactly one of --cron, --interval, --at, --weekly, --after")
    try:
        if cron is not None:
            trigger = triggers.cron(cron, tz)
        elif interval is not None:
            trigger = triggers.interval(interval)
        elif at_text is not None:
            trigger = triggers.at(_parse_at(at_text) or utcnow())
        elif weekly is not None:
            trigger = triggers.weekly(weekly, tz)
        else:
            trigger = triggers.after(after or "")
        row = set_schedule(
            app, job_type, trigger, by=by or f"cli:{getpass.getuser()}",
            params=_parse_assignments(params), from_text=True,
        )  # fmt: skip
    except (triggers.TriggerError, InvalidJobRequest) as exc:
        raise CliError(str(exc)) from None
    _print_schedule(row.as_dict(), as_json)


def _set_enabled(app: Jobyard, job_type: str, enabled: bool, by: str | None, as_json: bool) -> None:
    from scheduler.schedules import ScheduleNotFound, set_mode

    try:
        row = set_mode(app, job_type, enabled=enabled, by=by or f"cli:{getpass.getuser()}")
    except ScheduleNotFound as exc:
        raise CliError(str(exc)) from None
    _print_schedule(row.as_dict(), as_json)


@schedules.command("disable")
@click.argument("job_type")
@click.option("--by", help="Who changes it (default: cli:<user>).")
@click.option("--json", "as_json", is_flag=True)
@with_app
def schedules_disable(app: Jobyard, job_type: str, by: str | None, as_json: bool) -> None:
    """Stop planning JOB_TYPE; it then runs only when started by hand."""
    _set_enabled(app, job_type, False, by, as_json)


@schedules.command("enable")
@click.argument("job_type")
@click.option("--by", help="Who changes it (default: cli:<user>).")
@click.option("--json", "as_json", is_flag=True)
@with_app
def schedules_enable(app: Jobyard, job_type: str, by: str | None, as_json: bool) -> None:
    """Plan JOB_TYPE again with its trigger."""
    _set_enabled(app, job_type, True, by, as_json)


@schedules.command("run-now")
@click.argument("job_type")
@click.argument("params", nargs=-1)
@click.option("--by", help="Who starts it (default: cli:<user>).")
@click.option("--json", "as_json", is_flag=True)
@with_app
def schedules_run_now(app: Jobyard, job_type: str, params: tuple[str, ...], by: str | None, as_json: bool) -> None:
    """Start JOB_TYPE at once with its schedule's parameters; its next execution does not move."""
    from jobs.params import InvalidJobRequest
    from scheduler.schedules import run_now

    try:
        run_id = run_now(
            app, job_type, by=by or f"cli:{getpass.getuser()}", params=_parse_assignments(params), from_text=True
        )
    except InvalidJobRequest as exc:
        raise CliError(str(exc)) from None
    if as_json:
        _echo_json({"id": run_id})
    else:
        click.echo(run_id)


# -- processes -----------------------------------------------------------------------------------


def _queue_list(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",") if q.strip()]
    if not queues:
        raise CliError("--queues needs at least one queue name")
    return queues


@cli.command()
@click.option("--queues", default=defaults.DEFAULT_QUEUE, show_default=True, help="Comma-separated queue names.")
@click.option("--processes", default=defaults.DEFAULT_WORKER_PROCESSES, show_default=True, type=click.IntRange(1, 256))
@click.option("--burst", is_flag=True, help="Stop when no run on these queues is left to do.")
@with_app
def worker(app: Jobyard, queues: str, processes: int, burst: bool) -> None:
    """Run worker processes (scale out: any number, on any host)."""
    from workers.supervisor import Supervisor

    logging.getLogger().setLevel(logging.INFO)
    sys.exit(Supervisor(app, _queue_list(queues), processes, burst=burst).run())


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@with_app
def web(app: Jobyard, host: str, port: int) -> None:
    """Run the web process."""
    from werkzeug.serving import run_simple

    from dashboard.app import create_app

    run_simple(host, port, create_app(app), threaded=True)


@cli.command()
@with_app
def scheduler(app: Jobyard) -> None:
    """Run the scheduler process."""
    from scheduler.service import run_scheduler

    logging.getLogger().setLevel(logging.INFO)
    run_scheduler(app)


@cli.command()
@click.option("--processes", default=defaults.DEFAULT_WORKER_PROCESSES, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo/--no-demo", default=True, show_default=True, help="Enqueue the demo runs.")
@click.option("--until-done", is_flag=True, help="Exit once the demo runs have finished.")
def up(processes: int, demo: bool, until_done: bool) -> None:
    """Bring the whole system up: Redis, database, workers, demo runs."""
    from core.up import bring_up

    app = _app(click.get_current_context())
    sys.exit(bring_up(app, processes=processes, demo=demo, until_done=until_done))


def main() -> None:
    cli(prog_name="jobyard")


if __name__ == "__main__":
    main()
