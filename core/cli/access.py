"""`jobyard users …` and `jobyard tokens …`: dashboard accounts and API tokens."""

from __future__ import annotations

import getpass
import os

import click

from core.app import Jobyard
from core.cli.base import CliError, cli, echo_json, with_app
from dashboard.auth.passwords import WeakPassword
from dashboard.auth.roles import Role, RoleError
from dashboard.auth.tokens import TokenError, create_token, list_tokens, revoke_token
from dashboard.auth.users import (
    UserError,
    UserNotFound,
    add_user,
    grant,
    list_users,
    set_disabled,
    set_password,
    set_role,
)

ROLES = click.Choice([r.value for r in Role])
PASSWORD_ENV = "JOBYARD_NEW_PASSWORD"


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _password(prompt: bool) -> str:
    """From $JOBYARD_NEW_PASSWORD (scripts), else asked twice at the terminal; never a command-line argument."""
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    if not prompt:
        raise CliError(f"set {PASSWORD_ENV} or run in a terminal to be asked for the password")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@cli.group()
def users() -> None:
    """Dashboard accounts."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=ROLES, required=True)
@click.option("--domain", help="The domain of a domain_admin (or of a viewer limited to one domain).")
@click.option("--email")
@click.option("--grant", "granted", multiple=True, help="A job type an operator may start (repeatable).")
@with_app
def users_add(
    app: Jobyard, username: str, role: str, domain: str | None, email: str | None, granted: tuple[str, ...]
) -> None:
    """Create an account (password from $JOBYARD_NEW_PASSWORD or asked at the terminal)."""
    unknown = [t for t in granted if t not in app.registry]
    if unknown:
        raise CliError(f"unknown job type(s): {', '.join(unknown)}")
    password = _password(prompt=os.isatty(0))
    try:
        add_user(app.engine, username, password, role, by=_actor(), domain=domain, email=email)
        if granted:
            grant(app.engine, username, list(granted), by=_actor())
    except (UserError, WeakPassword, RoleError) as exc:
        raise CliError(str(exc)) from None
    click.echo(f"user {username} added ({role}{', ' + domain if domain else ''})")


@users.command("set-role")
@click.argument("username")
@click.option("--role", type=ROLES, required=True)
@click.option("--domain")
@with_app
def users_set_role(app: Jobyard, username: str, role: str, domain: str | None) -> None:
    """Change an account's role (and domain)."""
    try:
        set_role(app.engine, username, role, by=_actor(), domain=domain)
    except (UserNotFound, RoleError) as exc:
        raise CliError(str(exc)) from None
    click.echo(f"user {username} is now {role}")


@users.command("set-password")
@click.argument("username")
@with_app
def users_set_password(app: Jobyard, username: str) -> None:
    """Change a password; the account's open sessions end."""
    try:
        set_password(app.engine, username, _password(prompt=os.isatty(0)), by=_actor())
    except (UserNotFound, WeakPassword) as exc:
        raise CliError(str(exc)) from None
    click.echo(f"password of {username} changed")


def _set_disabled(app: Jobyard, username: str, disabled: bool) -> None:
    try:
        set_disabled(app.engine, username, disabled, by=_actor())
    except UserNotFound as exc:
        raise CliError(str(exc)) from None
    click.echo(f"user {username} {'disabled' if disabled else 'enabled'}")


@users.command("disable")
@click.argument("username")
@with_app
def users_disable(app: Jobyard, username: str) -> None:
    """Disable an account; its sessions and tokens stop working at once."""
    _set_disabled(app, username, True)


@users.command("enable")
@click.argument("username")
@with_app
def users_enable(app: Jobyard, username: str) -> None:
    """Enable a disabled account."""
    _set_disabled(app, username, False)


@users.command("grant")
@click.argument("username")
@click.argument("job_types", nargs=-1, required=True)
@click.option("--revoke", is_flag=True, help="Take the job types away instead.")
@with_app
def users_grant(app: Jobyard, username: str, job_types: tuple[str, ...], revoke: bool) -> None:
    """Grant job types to an operator (or revoke them)."""
    unknown = [t for t in job_types if t not in app.registry]
    if unknown and not revoke:
        raise CliError(f"unknown job type(s): {', '.join(unknown)}")
    try:
        grant(app.engine, username, list(job_types), by=_actor(), revoke=revoke)
    except UserNotFound as exc:
        raise CliError(str(exc)) from None
    click.echo(f"{'revoked from' if revoke else 'granted to'} {username}: {', '.join(job_types)}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_app
def users_list(app: Jobyard, as_json: bool) -> None:
    """List accounts."""
    rows = list_users(app.engine)
    if as_json:
        echo_json([{**r.__dict__, "granted_types": list(r.granted_types)} for r in rows])
        return
    for r in rows:
        state = " (disabled)" if r.disabled else ""
        click.echo(f"{r.username:<20} {r.role:<13} {r.domain or '-':<12} {','.join(r.granted_types) or '-'}{state}")


@cli.group()
def tokens() -> None:
    """API tokens for services."""


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=ROLES, required=True)
@click.option("--domain")
@click.option("--user", "username", help="Act as this user (their runs and grants), within --role.")
@with_app
def tokens_create(app: Jobyard, name: str, role: str, domain: str | None, username: str | None) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    try:
        token = create_token(app.engine, name, role, by=_actor(), domain=domain, username=username)
    except (TokenError, RoleError) as exc:
        raise CliError(str(exc)) from None
    click.echo(token)


@tokens.command("revoke")
@click.argument("name")
@with_app
def tokens_revoke(app: Jobyard, name: str) -> None:
    """Revoke a token; requests with it are refused at once."""
    try:
        revoke_token(app.engine, name, by=_actor())
    except TokenError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"token {name} revoked")


@tokens.command("list")
@with_app
def tokens_list(app: Jobyard) -> None:
    """List tokens (their first characters only)."""
    for t in list_tokens(app.engine):
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live"
        click.echo(f"{t.name:<20} {t.prefix}… {t.role:<13} {t.domain or '-':<12} {t.username or '-':<12} {state}")
