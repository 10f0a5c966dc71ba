"""`jobyard schedules …`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from core.cli.base import (
    CliError,
    actor_name,
    echo_json,
    echo_new_runs,
    echo_table,
    json_option,
    parse_assignments,
    parse_at,
    with_app,
)

if TYPE_CHECKING:
    from core.app import Jobyard

_HEADERS = ("TYPE", "MODE", "TRIGGER", "NEXT", "LAST RUN")


@click.group()
def schedules() -> None:
    """Plans of job types: list, show, set, enable, disable, run now."""


def _columns(row: dict[str, Any]) -> tuple[object, ...]:
    return row["type"], row["mode"], row["trigger"], row["next_run_at"], row["last_run_id"]


def _print_schedule(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(row)
        return
    echo_table(_HEADERS, [_columns(row)])
    if row["misfires"]:
        click.echo(f"  misfires: {row['misfires']} (last {row['last_misfire_at']})")
    click.echo(f"  changed by {row['changed_by']} at {row['changed_at']}")


@schedules.command("list")
@json_option
@with_app
def schedules_list(app: Jobyard, as_json: bool) -> None:
    """List every schedule."""
    from scheduler.schedules import list_all

    rows = [r.as_dict() for r in list_all(app)]
    if as_json:
        echo_json(rows)
        return
    echo_table(_HEADERS, [_columns(row) for row in rows])


@schedules.command("show")
@click.argument("job_type")
@json_option
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
@json_option
@with_app
def schedules_set(
    app: Jobyard, job_type: str, params: tuple[str, ...], cron: str | None, interval: int | None,
    at_text: str | None, weekly: str | None, after: str | None, tz: str, by: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Plan JOB_TYPE with exactly one trigger; key=value PARAMS are the runs' parameters."""
    from core.db import utcnow
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
            trigger = triggers.at(parse_at(at_text) or utcnow())
        elif weekly is not None:
            trigger = triggers.weekly(weekly, tz)
        else:
            trigger = triggers.after(after or "")
        row = set_schedule(
            app, job_type, trigger, by=by or actor_name(),
            params=parse_assignments(params), from_text=True,
        )  # fmt: skip
    except (triggers.TriggerError, InvalidJobRequest) as exc:
        raise CliError(str(exc)) from None
    _print_schedule(row.as_dict(), as_json)


def _set_enabled(app: Jobyard, job_type: str, enabled: bool, by: str | None, as_json: bool) -> None:
    from scheduler.schedules import ScheduleNotFound, set_mode

    try:
        row = set_mode(app, job_type, enabled=enabled, by=by or actor_name())
    except ScheduleNotFound as exc:
        raise CliError(str(exc)) from None
    _print_schedule(row.as_dict(), as_json)


@schedules.command("disable")
@click.argument("job_type")
@click.option("--by", help="Who changes it (default: cli:<user>).")
@json_option
@with_app
def schedules_disable(app: Jobyard, job_type: str, by: str | None, as_json: bool) -> None:
    """Stop planning JOB_TYPE; it then runs only when started by hand."""
    _set_enabled(app, job_type, False, by, as_json)


@schedules.command("enable")
@click.argument("job_type")
@click.option("--by", help="Who changes it (default: cli:<user>).")
@json_option
@with_app
def schedules_enable(app: Jobyard, job_type: str, by: str | None, as_json: bool) -> None:
    """Plan JOB_TYPE again with its trigger."""
    _set_enabled(app, job_type, True, by, as_json)


@schedules.command("run-now")
@click.argument("job_type")
@click.argument("params", nargs=-1)
@click.option("--by", help="Who starts it (default: cli:<user>).")
@json_option
@with_app
def schedules_run_now(app: Jobyard, job_type: str, params: tuple[str, ...], by: str | None, as_json: bool) -> None:
    """Start JOB_TYPE at once with its schedule's parameters; its next execution does not move."""
    from jobs.params import InvalidJobRequest
    from scheduler.schedules import run_now

    try:
        run_id = run_now(app, job_type, by=by or actor_name(), params=parse_assignments(params), from_text=True)
    except InvalidJobRequest as exc:
        raise CliError(str(exc)) from None
    echo_new_runs(app, [run_id], as_json)
