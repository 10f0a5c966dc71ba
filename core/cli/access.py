"""`jobyard users …` and `jobyard tokens …`: dashboard accounts and API tokens."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

import click

from core.cli.base import CliError, actor_name, echo_json, echo_table, json_option, with_app
from core.cli.choices import ROLES

if TYPE_CHECKING:
    from core.app import Jobyard

PASSWORD_ENV = "JOBYARD_NEW_PASSWORD"


def _password(prompt: bool) -> str:
    """From $JOBYARD_NEW_PASSWORD (scripts), else asked twice at the terminal; never a command-line argument."""
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    if not prompt:
        raise CliError(f"set {PASSWORD_ENV} or run in a terminal to be asked for the password")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _done(as_json: bool, text: str, **result: Any) -> None:
    if as_json:
        echo_json(result)
    else:
        click.echo(text)


@click.group()
def users() -> None:
    """Dashboard accounts."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--domain", help="The domain of a domain_admin (or of a viewer limited to one domain).")
@click.option("--email")
@click.option("--grant", "granted", multiple=True, help="A job type an operator may start (repeatable).")
@json_option
@with_app
def users_add(
    app: Jobyard,
    username: str,
    role: str,
    domain: str | None,
    email: str | None,
    granted: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create an account (password from $JOBYARD_NEW_PASSWORD or asked at the terminal)."""
    from dashboard.auth.passwords import WeakPassword
    from dashboard.auth.roles import RoleError
    from dashboard.auth.users import UserError, add_user, grant

    unknown = [t for t in granted if t not in app.registry]
    if unknown:
        raise CliError(f"unknown job type(s): {', '.join(unknown)}")
    password = _password(prompt=os.isatty(0))
    try:
        add_user(app.engine, username, password, role, by=actor_name(), domain=domain, email=email)
        if granted:
            grant(app.engine, username, list(granted), by=actor_name())
    except (UserError, WeakPassword, RoleError) as exc:
        raise CliError(str(exc)) from None
    _done(
        as_json, f"user {username} added ({role}{', ' + domain if domain else ''})",
        username=username, role=role, domain=domain, email=email, granted_types=sorted(granted),
    )  # fmt: skip


@users.command("set-role")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--domain")
@json_option
@with_app
def users_set_role(app: Jobyard, username: str, role: str, domain: str | None, as_json: bool) -> None:
    """Change an account's role (and domain)."""
    from dashboard.auth.roles import RoleError
    from dashboard.auth.users import UserError, UserNotFound, set_role

    try:
        set_role(app.engine, username, role, by=actor_name(), domain=domain)
    except (UserNotFound, UserError, RoleError) as exc:
        raise CliError(str(exc)) from None
    _done(as_json, f"user {username} is now {role}", username=username, role=role, domain=domain)


@users.command("set-password")
@click.argument("username")
@json_option
@with_app
def users_set_password(app: Jobyard, username: str, as_json: bool) -> None:
    """Change a password; the account's open sessions end."""
    from dashboard.auth.passwords import WeakPassword
    from dashboard.auth.users import UserNotFound, set_password

    try:
        set_password(app.engine, username, _password(prompt=os.isatty(0)), by=actor_name())
    except (UserNotFound, WeakPassword) as exc:
        raise CliError(str(exc)) from None
    _done(as_json, f"password of {username} changed", username=username, password_changed=True)


def _set_disabled(app: Jobyard, username: str, disabled: bool, as_json: bool) -> None:
    from dashboard.auth.users import UserNotFound, set_disabled

    try:
        set_disabled(app.engine, username, disabled, by=actor_name())
    except UserNotFound as exc:
        raise CliError(str(exc)) from None
    _done(as_json, f"user {username} {'disabled' if disabled else 'enabled'}", username=username, disabled=disabled)


@users.command("disable")
@click.argument("username")
@json_option
@with_app
def users_disable(app: Jobyard, username: str, as_json: bool) -> None:
    """Disable an account; its sessions and tokens stop working at once."""
    _set_disabled(app, username, True, as_json)


@users.command("enable")
@click.argument("username")
@json_option
@with_app
def users_enable(app: Jobyard, username: str, as_json: bool) -> None:
    """Enable a disabled account."""
    _set_disabled(app, username, False, as_json)


@users.command("grant")
@click.argument("username")
@click.argument("job_types", nargs=-1, required=True)
@click.option("--revoke", is_flag=True, help="Take the job types away instead.")
@json_option
@with_app
def users_grant(app: Jobyard, username: str, job_types: tuple[str, ...], revoke: bool, as_json: bool) -> None:
    """Grant job types to an operator (or revoke them)."""
    from dashboard.auth.users import UserNotFound, grant, list_users

    unknown = [t for t in job_types if t not in app.registry]
    if unknown and not revoke:
        raise CliError(f"unknown job type(s): {', '.join(unknown)}")
    try:
        grant(app.engine, username, list(job_types), by=actor_name(), revoke=revoke)
    except UserNotFound as exc:
        raise CliError(str(exc)) from None
    granted = next((list(u.granted_types) for u in list_users(app.engine) if u.username == username), [])
    _done(
        as_json, f"{'revoked from' if revoke else 'granted to'} {username}: {', '.join(job_types)}",
        username=username, revoked=revoke, job_types=list(job_types), granted_types=granted,
    )  # fmt: skip


@users.command("list")
@json_option
@with_app
def users_list(app: Jobyard, as_json: bool) -> None:
    """List accounts."""
    from dashboard.auth.users import list_users

    rows = list_users(app.engine)
    if as_json:
        echo_json([{**dataclasses.asdict(r), "granted_types": list(r.granted_types)} for r in rows])
        return
    echo_table(
        ("USERNAME", "ROLE", "DOMAIN", "GRANTED", "STATE"),
        [(r.username, r.role, r.domain, ",".join(r.granted_types), "disabled" if r.disabled else "enabled")
         for r in rows],
    )  # fmt: skip


@click.group()
def tokens() -> None:
    """API tokens for services."""


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--domain")
@click.option("--user", "username", help="Act as this user (their runs and grants), within --role.")
@json_option
@with_app
def tokens_create(app: Jobyard, name: str, role: str, domain: str | None, username: str | None, as_json: bool) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    from dashboard.auth.roles import RoleError
    from dashboard.auth.tokens import TokenError, create_token

    try:
        token = create_token(app.engine, name, role, by=actor_name(), domain=domain, username=username)
    except (TokenError, RoleError) as exc:
        raise CliError(str(exc)) from None
    _done(as_json, token, name=name, token=token, role=role, domain=domain, user=username)


@tokens.command("revoke")
@click.argument("name")
@json_option
@with_app
def tokens_revoke(app: Jobyard, name: str, as_json: bool) -> None:
    """Revoke a token; requests with it are refused at once."""
    from dashboard.auth.tokens import TokenError, revoke_token

    try:
        revoke_token(app.engine, name, by=actor_name())
    except TokenError as exc:
        raise CliError(str(exc)) from None
    _done(as_json, f"token {name} revoked", name=name, revoked=True)


@tokens.command("list")
@json_option
@with_app
def tokens_list(app: Jobyard, as_json: bool) -> None:
    """List tokens (their first characters only)."""
    from dashboard.auth.tokens import list_tokens

    rows = list_tokens(app.engine)
    if as_json:
        echo_json([dataclasses.asdict(t) for t in rows])
        return
    echo_table(
        ("NAME", "PREFIX", "ROLE", "DOMAIN", "USER", "STATE"),
        [(t.name, f"{t.prefix}…", t.role, t.domain, t.username,
          f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live") for t in rows],
    )  # fmt: skip
