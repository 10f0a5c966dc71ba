"""`jobyard enqueue|runs|show|types|retry|reconcile`."""

from __future__ import annotations

import getpass
from typing import Any

import click

from core.app import Jobyard
from core.cli.base import CliError, app_from, cli, echo_json, echo_run_id, parse_assignments, parse_at, with_app
from jobs.status import RunStatus


@cli.command()
@click.argument("job_type")
@click.argument("params", nargs=-1)
@click.option("--queue", help="Queue to use instead of the type's own.")
@click.option("--at", "at_text", help="Run at this ISO 8601 time instead of now.")
@click.option("--triggered-by", help="Who asks for the run (default: cli:<user>).")
@click.option("--domain", help="Domain the run belongs to.")
@click.option("--instance", help="Named instance that must run it.")
@click.option("--depends-on", multiple=True, help="Run that must complete first (repeatable).")
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
    instance: str | None,
    depends_on: tuple[str, ...],
    as_json: bool,
) -> None:
    """Enqueue a run of JOB_TYPE with key=value PARAMS; prints the run id."""
    from jobs.enqueue import EnqueueRequest, enqueue_many
    from jobs.params import InvalidJobRequest

    request = EnqueueRequest(
        job_type,
        parse_assignments(params),
        queue,
        parse_at(at_text),
        triggered_by or f"cli:{getpass.getuser()}",
        domain,
        depends_on=depends_on,
        instance=instance,
    )
    try:
        [run_id] = enqueue_many([request], app=app, from_text=True)
    except InvalidJobRequest as exc:
        raise CliError(str(exc)) from None
    echo_run_id(run_id, as_json)


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
        echo_json(rows)
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
        echo_json(detail)
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
    for t in declared:
        params = ", ".join(t["params"]["properties"]) or "-"
        click.echo(f"{t['name']:<24} {t['title']:<24} queue={t['queue']} params: {params}")


@cli.command()
@click.argument("run_id")
@click.option("--by", help="Who retries (default: cli:<user>).")
@click.option("--json", "as_json", is_flag=True)
@with_app
def retry(app: Jobyard, run_id: str, by: str | None, as_json: bool) -> None:
    """Retry a failed run: a new attempt series, history kept (a cancelled run stays cancelled)."""
    from jobs.actions import RunNotFound, RunNotRetryable, retry_run

    try:
        retry_run(app, run_id, by=by or f"cli:{getpass.getuser()}")
    except (RunNotFound, RunNotRetryable) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json({"id": run_id, "status": "pending"})
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
        echo_json(report.as_dict())
    else:
        click.echo(f"pushed again: {len(report.repushed)}, attempts of dead workers settled: {len(report.died)}")


@cli.command()
@click.argument("run_id")
@click.option("--by", help="Who cancels (default: cli:<user>).")
@click.option("--json", "as_json", is_flag=True)
@with_app
def cancel(app: Jobyard, run_id: str, by: str | None, as_json: bool) -> None:
    """Cancel a run: at once if it is not executing, else ask it to stop (killed after the grace period)."""
    from jobs.actions import RunNotFound
    from jobs.cancel import RunNotCancellable, cancel_run

    try:
        status = cancel_run(app, run_id, by=by or f"cli:{getpass.getuser()}")
    except (RunNotFound, RunNotCancellable) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json({"id": run_id, "status": status.value})
    elif status is RunStatus.CANCELLED:
        click.echo(f"run {run_id} cancelled")
    else:
        click.echo(f"run {run_id} asked to stop; it is killed if still running in {app.settings.cancel_grace_s:.0f}s")


@cli.command()
@click.argument("run_id")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True)
@with_app
def notify(app: Jobyard, run_id: str, addresses: tuple[str, ...], as_json: bool) -> None:
    """Mail ADDRESSES when RUN_ID ends (at once if it already has)."""
    from jobs.actions import RunNotFound
    from jobs.notifications import notify_me

    try:
        recipients = notify_me(app, run_id, addresses)
    except (RunNotFound, ValueError) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json({"id": run_id, "notify": recipients})
    else:
        click.echo(f"run {run_id} will notify {', '.join(recipients)}")
