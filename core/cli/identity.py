"""`jobyard targets …` and `jobyard identities …`: SCIM targets and the identities provisioned to them.

A target's bearer token is read from standard input or a file (`--token-file`), never from the command line,
where shell history and `ps` would keep it; a self-credentialed identity's credential likewise
(`--credential-file`). Both go through dashboard/identity_operations.py as an admin named `cli:<user>`, so the
CLI writes the same audit trail as the pages and the API.
"""

from __future__ import annotations

import getpass
import sys

import click

from core.app import Jobyard
from core.cli.base import CliError, cli, echo_json, with_app
from dashboard import identity_operations as ops
from dashboard.auth.roles import Principal, Role
from dashboard.operations import Actor, NotFound
from jobs.catalog.identity.identities import IDENTITY_TYPES, BadIdentity, NewIdentity
from jobs.catalog.identity.models import TARGET_ROLES
from jobs.catalog.identity.targets import BadTarget

MAX_SECRET_FILE_BYTES = 64 * 1024


def _actor() -> Actor:
    return Actor(Principal(f"cli:{getpass.getuser()}", Role.ADMIN))


def _read_secret(source: str, what: str) -> str:
    """The secret in file `source`, or on standard input for "-" (asked at a terminal, not echoed). One
    trailing line break is dropped: `echo TOKEN | jobyard …` and files ending in a newline mean the token."""
    if source == "-":
        if sys.stdin.isatty():
            return str(click.prompt(what.capitalize(), hide_input=True))
        text = sys.stdin.read(MAX_SECRET_FILE_BYTES + 1)
    else:
        try:
            with open(source, encoding="utf-8") as secret_file:
                text = secret_file.read(MAX_SECRET_FILE_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read the {what} from {source}: {exc}") from None
    if len(text) > MAX_SECRET_FILE_BYTES:
        raise CliError(f"the {what} is longer than {MAX_SECRET_FILE_BYTES} bytes")
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


@cli.group()
def targets() -> None:
    """SCIM 2.0 targets: where identities are provisioned."""


@targets.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(TARGET_ROLES), required=True, help="domain: domain users; idp: SSO users.")
@click.option("--url", "base_url", required=True, help="The SCIM service's base URL.")
@click.option(
    "--token-file",
    default="-",
    show_default=True,
    help="File holding the bearer token; '-' reads standard input (asked at a terminal).",
)
@click.option("--keep-token", is_flag=True, help="Updating a target: keep its stored token.")
@with_app
def targets_add(app: Jobyard, name: str, role: str, base_url: str, token_file: str, keep_token: bool) -> None:
    """Add a target, or update one (its token too, unless --keep-token)."""
    token = None if keep_token else _read_secret(token_file, "token")
    try:
        created = ops.save_target(app, _actor(), name, role=role, base_url=base_url, token=token)
    except BadTarget as exc:
        raise CliError(str(exc)) from None
    click.echo(f"target {name} {'added' if created else 'updated'} ({role}, {base_url.rstrip('/')})")


@targets.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_app
def targets_list(app: Jobyard, as_json: bool) -> None:
    """List targets (tokens masked)."""
    found = ops.list_targets(app, _actor().principal)
    if as_json:
        echo_json([t.__dict__ for t in found])
        return
    for t in found:
        click.echo(f"{t.name:<20} {t.role:<7} {t.base_url:<50} {t.token_masked}")


@targets.command("remove")
@click.argument("name")
@with_app
def targets_remove(app: Jobyard, name: str) -> None:
    """Remove a target and its token."""
    try:
        ops.remove_target(app, _actor(), name)
    except NotFound as exc:
        raise CliError(str(exc)) from None
    click.echo(f"target {name} removed")


@cli.group()
def identities() -> None:
    """Identities: create them (provisioning starts at once) and list them."""


@identities.command("create")
@click.argument("user_name")
@click.option("--type", "identity_type", type=click.Choice(IDENTITY_TYPES), required=True)
@click.option("--display-name")
@click.option("--email")
@click.option("--platform", help="A domain target's name (domain users are created there), or a platform name.")
@click.option("--department")
@click.option("--title")
@click.option("--idp-target", help="The identity provider target, when several are configured.")
@click.option(
    "--credential-file",
    help="File holding the identity's own credential (self-credentialed types); '-' reads standard input.",
)
@click.option("--json", "as_json", is_flag=True)
@with_app
def identities_create(
    app: Jobyard,
    user_name: str,
    identity_type: str,
    display_name: str | None,
    email: str | None,
    platform: str | None,
    department: str | None,
    title: str | None,
    idp_target: str | None,
    credential_file: str | None,
    as_json: bool,
) -> None:
    """Create an identity; prints its id, status and the runs provisioning it."""
    credential = _read_secret(credential_file, "credential") if credential_file else None
    new = NewIdentity(
        user_name=user_name, identity_type=identity_type, display_name=display_name, email=email, platform=platform,
        department=department, title=title, credential=credential, idp_target=idp_target,
    )  # fmt: skip
    try:
        created = ops.create_identity(app, _actor(), new)
    except BadIdentity as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json({"id": created.identity_id, "status": created.status, "runs": created.runs})
        return
    click.echo(f"identity {created.identity_id} {user_name}: {created.status}")
    for operation, run_id in created.runs.items():
        click.echo(f"  {operation}: run {run_id}")


@identities.command("list")
@click.option("--status", type=click.Choice(ops.DISPLAY_STATUSES))
@click.option("--type", "identity_type", type=click.Choice(IDENTITY_TYPES))
@click.option("--limit", type=click.IntRange(1, ops.MAX_PAGE_SIZE), default=ops.MAX_PAGE_SIZE, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@with_app
def identities_list(app: Jobyard, status: str | None, identity_type: str | None, limit: int, as_json: bool) -> None:
    """List identities, newest first."""
    page = ops.list_identities(
        app, _actor().principal, ops.IdentityFilter(status=status, identity_type=identity_type), limit=limit
    )
    if as_json:
        echo_json(page.identities)
        return
    for i in page.identities:
        click.echo(
            f"{i['id']:>6} {i['user_name']:<30} {i['identity_type']:<18} {i['display_status']:<12} "
            f"{i['platform'] or '-':<12} {i['email'] or '-'}"
        )
