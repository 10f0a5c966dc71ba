"""The `jobyard` command group and what its commands share. Bad input exits 2 with a one-line message."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

import click
from redis import RedisError
from sqlalchemy.exc import OperationalError, ProgrammingError

from core.app import Jobyard
from core.settings import SettingsError

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    exit_code = 2


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def app_from(ctx: click.Context) -> Jobyard:
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
        app = app_from(click.get_current_context())
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


def echo_run_id(run_id: str, as_json: bool) -> None:
    if as_json:
        echo_json({"id": run_id})
    else:
        click.echo(run_id)


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"parameters are key=value, got {pair!r}")
        params[key] = value
    return params


def parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--at must be an ISO 8601 time, got {value!r}") from None
    return at if at.tzinfo else at.astimezone()  # a bare time is the operator's local time
