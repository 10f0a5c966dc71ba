"""`jobyard enqueue|runs|show|types|retry|run-again|cancel|notify|reconcile`.

A RUN_ID argument (and --depends-on) takes a run's id or an unambiguous prefix of it (base.resolve_run_id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from core.cli.base import (
    CliError,
    actor_name,
    app_from,
    echo_json,
    echo_new_runs,
    echo_table,
    json_option,
    parse_assignments,
    parse_at,
    resolve_run_id,
    with_app,
)
from core.cli.choices import RUN_STATUSES

if TYPE_CHECKING:
    from core.app import Jobyard


@click.command()
@click.argument("job_type")
@click.argument("params", nargs=-1)
@click.option("--queue", help="Queue to use instead of the type's own.")
@click.option("--at", "at_text", help="Run at this ISO 8601 time instead of now.")
@click.option("--triggered-by", help="Who asks for the run (default: cli:<user>).")
@click.option("--domain", help="Domain the run belongs to.")
@click.option("--instance", help="Named instance that must run it.")
@click.option("--depends-on", multiple=True, help="Run that must complete first (repeatable).")
@json_option
@with_app
def enqueue(
    app: Jobyard,
    job_type: str,
    params: tuple[str, ...],
    queue: str | None,
    at_text: str | None,
    triggered_by: str | None,
    domain: str | None,
    instance: str | None,
    depends_on: tuple[str, ...],
    as_json: bool,
) -> None:
    """Enqueue a run of JOB_TYPE with key=value PARAMS; prints the run id.

    A queue that no worker has listened on is warned about: the run waits there until a worker serves it."""
    from jobs.enqueue import EnqueueRequest, enqueue_many
    from jobs.params import InvalidJobRequest

    request = EnqueueRequest(
        job_type,
        parse_assignments(params),
        queue,
        parse_at(at_text),
        triggered_by or actor_name(),
        domain,
        depends_on=tuple(resolve_run_id(app, d, what="--depends-on") for d in depends_on),
        instance=instance,
    )
    try:
        [run_id] = enqueue_many([request], app=app, from_text=True)
    except InvalidJobRequest as exc:
        raise CliError(str(exc)) from None
    echo_new_runs(app, [run_id], as_json)


@click.command()
@click.option("--status", type=click.Choice(RUN_STATUSES))
@click.option("--type", "type_name", help="Only runs of this job type.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@with_app
def runs(app: Jobyard, status: str | None, type_name: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    from jobs.queries import list_runs

    rows = list_runs(app.engine, status=status, type=type_name, limit=limit)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ("ID", "TYPE", "STATUS", "ATTEMPTS", "CREATED"),
        [(r["id"], r["type"], r["status"], f"{r['attempts']}/{r['max_attempts']}", r["created_at"]) for r in rows],
    )


# What `show` prints of a run, in this order, when set. The run's own start is its first attempt's; started_at (the
# latest attempt's) is in the attempts' lines with every attempt's own start and finish.
_SHOWN = (
    "queue",
    "params",
    "triggered_by",
    "created_at",
    "scheduled_for",
    "first_started_at",
    "finished_at",
    "next_attempt_at",
    "retried_by",
    "retried_at",
    "result",
    "error",
)


@click.command()
@click.argument("run_id")
@json_option
@with_app
def show(app: Jobyard, run_id: str, as_json: bool) -> None:
    """Show a run: status, timings, attempts with their errors, log.

    The run's timings are its first start (first_started_at) and its finish; each attempt has its own."""
    from jobs.queries import run_detail

    detail = run_detail(app.engine, resolve_run_id(app, run_id))
    if detail is None:  # deleted (archived) between the two reads
        raise CliError(f"no run {run_id!r}")
    if as_json:
        echo_json(detail)
        return
    click.echo(f"run {detail['id']}  {detail['type']}  {detail['status']}")
    shown = [(key, detail[key]) for key in _SHOWN if detail[key] not in (None, {})]
    progress = detail["progress"]
    if progress["total"]:
        shown.append(("progress", f"{progress['done']}/{progress['total']} {progress['message'] or ''}".rstrip()))
    echo_table(None, shown, indent="  ")
    if detail["attempt_history"]:
        click.echo("attempts")
        echo_table(
            ("ATTEMPT", "OUTCOME", "WORKER", "STARTED", "FINISHED", "ERROR"),
            [
                (
                    f"{a['series']}.{a['number']}",
                    a["outcome"] or "running",
                    a["worker"],
                    a["started_at"],
                    a["finished_at"],
                    f"{a['error_class']}: {a['error_message']}" if a["error_class"] else None,
                )
                for a in detail["attempt_history"]
            ],
            indent="  ",
        )
    if detail["logs"]:
        click.echo("log")
        echo_table(
            ("AT", "LEVEL", "MESSAGE"), [(line["at"], line["level"], line["message"]) for line in detail["logs"]],
            indent="  ",
        )  # fmt: skip


@click.command()
@json_option
def types(as_json: bool) -> None:
    """List the declared job types."""
    app = app_from(click.get_current_context())
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
        echo_json(declared)
        return
    echo_table(
        ("NAME", "TITLE", "QUEUE", "PARAMS"),
        [(t["name"], t["title"], t["queue"], ", ".join(t["params"]["properties"])) for t in declared],
    )


@click.command()
@click.argument("run_id")
@click.option("--by", help="Who retries (default: cli:<user>).")
@json_option
@with_app
def retry(app: Jobyard, run_id: str, by: str | None, as_json: bool) -> None:
    """Retry a failed run: a new attempt series, history kept (a cancelled run stays cancelled).

    A cancelled run is started again with `jobyard run-again`."""
    from jobs.actions import RunNotFound, RunNotRetryable, retry_run

    run_id = resolve_run_id(app, run_id)
    try:
        retry_run(app, run_id, by=by or actor_name())
    except (RunNotFound, RunNotRetryable) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json({"id": run_id, "status": "pending"})
    else:
        click.echo(f"run {run_id} queued again")


@click.command("run-again")
@click.argument("run_id")
@click.option("--by", help="Who starts it (default: cli:<user>).")
@json_option
@with_app
def run_again(app: Jobyard, run_id: str, by: str | None, as_json: bool) -> None:
    """Start a new run of RUN_ID's type with its parameters; RUN_ID stays as it was.

    What the dashboard's Run again does, as an admin, in its audit trail; prints the new run's id."""
    from dashboard.auth.roles import Principal, Role
    from dashboard.operations import Actor, Conflict, Forbidden, NotFound
    from dashboard.operations import run_again as start_again

    run_id = resolve_run_id(app, run_id)
    try:
        new_id = start_again(app, Actor(Principal(by or actor_name(), Role.ADMIN)), run_id)
    except (NotFound, Conflict, Forbidden) as exc:
        raise CliError(str(exc)) from None
    echo_new_runs(app, [new_id], as_json, again_of=run_id)


@click.command()
@click.option("--grace", type=click.FloatRange(0), help="Seconds a fresh run is left alone (default from settings).")
@json_option
@with_app
def reconcile(app: Jobyard, grace: float | None, as_json: bool) -> None:
    """Push again what Redis lost; settle attempts of dead workers."""
    from workers.reconciler import reconcile as run_reconcile

    report = run_reconcile(app, grace_s=grace)
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(f"pushed again: {len(report.repushed)}, attempts of dead workers settled: {len(report.died)}")


@click.command()
@click.argument("run_id")
@click.option("--by", help="Who cancels (default: cli:<user>).")
@json_option
@with_app
def cancel(app: Jobyard, run_id: str, by: str | None, as_json: bool) -> None:
    """Cancel a run: at once if it is not executing, else ask it to stop (killed after the grace period)."""
    from jobs.actions import RunNotFound
    from jobs.cancel import RunNotCancellable, cancel_run
    from jobs.status import RunStatus

    run_id = resolve_run_id(app, run_id)
    try:
        status = cancel_run(app, run_id, by=by or actor_name())
    except (RunNotFound, RunNotCancellable) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json({"id": run_id, "status": status.value})
    elif status is RunStatus.CANCELLED:
        click.echo(f"run {run_id} cancelled")
    else:
        click.echo(f"run {run_id} asked to stop; it is killed if still running in {app.settings.cancel_grace_s:.0f}s")


@click.command()
@click.argument("run_id")
@click.argument("addresses", nargs=-1, required=True)
@json_option
@with_app
def notify(app: Jobyard, run_id: str, addresses: tuple[str, ...], as_json: bool) -> None:
    """Mail ADDRESSES when RUN_ID ends (at once if it already has)."""
    from jobs.actions import RunNotFound
    from jobs.notifications import notify_me

    run_id = resolve_run_id(app, run_id)
    try:
        recipients = notify_me(app, run_id, addresses)
    except (RunNotFound, ValueError) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json({"id": run_id, "notify": recipients})
    else:
        click.echo(f"run {run_id} will notify {', '.join(recipients)}")
