"""`jobyard …`: the command line.

A command's module is imported only when that command runs or its own help is asked for (core/cli/lazy.py), so
that `jobyard --help` and `jobyard X --help` answer at once instead of loading SQLAlchemy, redis, rq and the
dashboard first. The listing's short help is kept here, next to where each command is.
"""

from __future__ import annotations

import logging

import click

from core.cli.lazy import LazyCommand, OneLineErrors

# Each short help is the first line of the command's docstring (tests/unit/test_cli_commands.py holds them equal).
COMMANDS: dict[str, LazyCommand] = {
    "cancel": LazyCommand(
        "core.cli.runs:cancel",
        "Cancel a run: at once if it is not executing, else ask it to stop (killed after the grace period).",
    ),
    "db": LazyCommand("core.cli.processes:db", "Database schema."),
    "enqueue": LazyCommand(
        "core.cli.runs:enqueue", "Enqueue a run of JOB_TYPE with key=value PARAMS; prints the run id."
    ),
    "identities": LazyCommand(
        "core.cli.identity:identities", "Identities: create them (provisioning starts at once) and list them."
    ),
    "notify": LazyCommand("core.cli.runs:notify", "Mail ADDRESSES when RUN_ID ends (at once if it already has)."),
    "reconcile": LazyCommand("core.cli.runs:reconcile", "Push again what Redis lost; settle attempts of dead workers."),
    "retry": LazyCommand(
        "core.cli.runs:retry",
        "Retry a failed run: a new attempt series, history kept (a cancelled run stays cancelled).",
    ),
    "run-again": LazyCommand(
        "core.cli.runs:run_again", "Start a new run of RUN_ID's type with its parameters; RUN_ID stays as it was."
    ),
    "runs": LazyCommand("core.cli.runs:runs", "List runs, newest first."),
    "scheduler": LazyCommand("core.cli.processes:scheduler", "Run the scheduler process."),
    "schedules": LazyCommand(
        "core.cli.schedules:schedules", "Plans of job types: list, show, set, enable, disable, run now."
    ),
    "show": LazyCommand("core.cli.runs:show", "Show a run: status, timings, attempts with their errors, log."),
    "targets": LazyCommand("core.cli.identity:targets", "SCIM 2.0 targets: where identities are provisioned."),
    "tokens": LazyCommand("core.cli.access:tokens", "API tokens for services."),
    "types": LazyCommand("core.cli.runs:types", "List the declared job types."),
    "up": LazyCommand(
        "core.cli.processes:up", "Bring the whole system up: Redis, database, workers, scheduler, web, demo runs."
    ),
    "users": LazyCommand("core.cli.access:users", "Dashboard accounts."),
    "web": LazyCommand(
        "core.cli.processes:web", "Run the web process (dashboard, API, rq-dashboard, metrics) under gunicorn."
    ),
    "worker": LazyCommand("core.cli.processes:worker", "Run worker processes (scale out: any number, on any host)."),
}

# The long-running processes take no --json: they run until stopped and write log lines, they have no result to
# print. Every other command takes it (tests/unit/test_cli_commands.py).
WITHOUT_JSON = frozenset({"worker", "scheduler", "web", "up"})


@click.group(cls=OneLineErrors, lazy_commands=COMMANDS)
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def cli(verbose: bool) -> None:
    """Jobyard: durable background jobs on Redis Queue.

    A RUN_ID (and --depends-on) is a run's id, or 6 or more of its first characters when no other run's id starts
    with them.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def main() -> None:
    cli(prog_name="jobyard")


__all__ = ["COMMANDS", "WITHOUT_JSON", "cli", "main"]
