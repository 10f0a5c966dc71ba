"""What the `jobyard` commands share. Bad input exits 2 with a one-line message.

Imported by every command module, and so before any `--help` of theirs: it imports nothing heavy at module level
(core.app, SQLAlchemy, redis and rq are imported inside the functions that use them).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from core.app import Jobyard

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

# A run id is 32 hex digits; `jobyard up` prints 8 of them and the dashboard 12. Fewer than this many would match
# more and more runs as the record grows, so they are refused rather than guessed from.
MIN_RUN_ID_PREFIX = 6
AMBIGUOUS_SHOWN = 5


class CliError(click.ClickException):
    """Bad input or an unusable environment: exit 2 with one line (multi-line messages, such as a database
    driver's, are joined)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(line.strip() for line in message.strip().splitlines()))


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def json_option(func: F) -> F:
    """`--json`: the command's result as one JSON document on standard output."""
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(func)


def app_from(ctx: click.Context) -> Jobyard:
    from core.app import Jobyard
    from core.settings import SettingsError

    app: Jobyard | None = ctx.obj.get("app") if ctx.obj else None
    if app is None:
        try:
            app = Jobyard.from_env().install()
        except SettingsError as exc:
            raise CliError(str(exc)) from None
        except ModuleNotFoundError as exc:  # a JOBYARD_JOB_MODULES entry that is not there: input, not a bug
            raise CliError(f"cannot load the job types (JOBYARD_JOB_MODULES): {exc}") from None
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
        from redis import RedisError
        from sqlalchemy.exc import OperationalError, ProgrammingError

        app = app_from(click.get_current_context())
        try:
            _check_schema(app)
            return func(app, *args, **kwargs)
        except (OperationalError, ProgrammingError) as exc:
            raise CliError(f"database error: {exc.orig}") from None
        except RedisError as exc:
            raise CliError(f"Redis error: {exc}") from None

    return wrapper  # type: ignore[return-value]


def actor_name() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


# Run ids


def resolve_run_id(app: Jobyard, text: str, *, what: str = "run") -> str:
    """The full id of the one run whose id is `text` or starts with it (at least MIN_RUN_ID_PREFIX characters).

    `what` names the input in the messages (e.g. "--depends-on"). No run, an ambiguous prefix and a too short one
    are bad input: exit 2, with the matches of an ambiguous one listed."""
    from jobs.queries import runs_by_id_prefix

    if len(text) < MIN_RUN_ID_PREFIX:
        raise CliError(f"{what} id {text!r} is too short: give at least {MIN_RUN_ID_PREFIX} characters of it")
    matches = runs_by_id_prefix(app.engine, text, limit=AMBIGUOUS_SHOWN + 1)
    if not matches:
        raise CliError(f"{what}: no run {text!r}" if what != "run" else f"no run {text!r}")
    if len(matches) == 1:
        return str(matches[0]["id"])
    shown = ", ".join(f"{m['id']} ({m['type']}, {m['status']})" for m in matches[:AMBIGUOUS_SHOWN])
    more = ", and more" if len(matches) > AMBIGUOUS_SHOWN else ""
    raise CliError(f"{what} id {text!r} is ambiguous: {shown}{more}; give more characters")


# Runs created by a command


def unserved_queue_warnings(app: Jobyard, queues: Iterable[str]) -> list[str]:
    """A warning for each queue that no worker has ever listened on: a run there waits until one does.

    A worker has listened on a queue when the workers table remembers one that served it (a row per worker
    process ever started, stopped ones included), or when RQ has a worker registered on it now (one started
    elsewhere, against another database's record)."""
    from redis import RedisError
    from rq.worker_registration import WORKERS_BY_QUEUE_KEY

    from jobs.dispatch import instance_queue
    from jobs.queries import queue_has_had_workers

    warnings = []
    for queue in sorted(set(queues)):
        if queue_has_had_workers(app.engine, queue):
            continue
        try:
            if app.redis.scard(WORKERS_BY_QUEUE_KEY % queue):
                continue
        except RedisError:
            log.debug("cannot read RQ's workers of %s", queue, exc_info=True)
        instance = queue.removeprefix(instance_queue(""))
        start = f"--instance {instance}" if instance != queue else f"--queues {queue}"
        warnings.append(
            f"no worker has listened on queue {queue!r}: the run waits there until one does (jobyard worker {start})"
        )
    return warnings


def echo_new_runs(app: Jobyard, run_ids: Sequence[str], as_json: bool, **extra: Any) -> None:
    """Prints the ids of runs just created (one: `{"id": …}` as JSON, with `extra`), each warning about their
    queues on standard error and, as JSON, in `warnings`."""
    from jobs.queries import waiting_queues

    warnings = unserved_queue_warnings(app, waiting_queues(app.engine, run_ids))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        [run_id] = run_ids
        echo_json({"id": run_id, **extra, "warnings": warnings})
    else:
        for run_id in run_ids:
            click.echo(run_id)


# Input


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"parameters are key=value, got {pair!r}")
        if key in params:
            # The last one winning silently would run with a value the operator may not have meant.
            raise CliError(f"parameter {key!r} is given more than once")
        params[key] = value
    return params


def parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--at must be an ISO 8601 time, got {value!r}") from None
    try:
        return at if at.tzinfo else at.astimezone()  # a bare time is the operator's local time
    except (OverflowError, OSError, ValueError):  # out of the range of local times (year 1 or 9999)
        raise CliError(f"--at is out of range, got {value!r}") from None


# Output


def _width(text: str) -> int:
    """Columns `text` takes on a terminal: East Asian wide characters two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[object]], *, indent: str = "") -> list[str]:
    """Lines of a table whose columns are as wide as their widest cell (None shows as "-"), under a line of
    `headers` if given. A column of whole numbers is right-aligned; the last column is not padded, so that lines
    carry no trailing blanks."""
    values = [list(row) for row in rows]
    count = len(headers) if headers is not None else max((len(row) for row in values), default=0)
    right = [
        bool(values) and all(isinstance(row[i], int) and not isinstance(row[i], bool) for row in values)
        for i in range(count)
    ]
    cells = ([list(headers)] if headers is not None else []) + [[_cell(v) for v in row] for row in values]
    widths = [max(_width(row[i]) for row in cells) for i in range(count)]
    lines = []
    for row in cells:
        parts = [
            " " * (widths[i] - _width(text)) + text if right[i] else text + " " * (widths[i] - _width(text))
            for i, text in enumerate(row)
        ]
        lines.append((indent + "  ".join(parts)).rstrip())
    return lines


def echo_table(headers: Sequence[str] | None, rows: Iterable[Sequence[object]], *, indent: str = "") -> None:
    for line in table(headers, rows, indent=indent):
        click.echo(line)
