"""`jobyard targets …` and `jobyard identities …`: SCIM targets and the identities provisioned to them.

A target's bearer token is read from standard input or a file (`--token-file`), never from the command line,
where shell history and `ps` would keep it; a self-credentialed identity's credential likewise
(`--credential-file`). Both go through dashboard/identity_operations.py as an admin named `cli:<user>`, so the
CLI writes the same audit trail as the pages and the API.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from core.cli.base import CliError, actor_name, echo_json, echo_table, json_option, with_app
from core.cli.choices import IDENTITY_DISPLAY_STATUSES, IDENTITY_PAGE_SIZE, IDENTITY_TYPES, TARGET_ROLES

if TYPE_CHECKING:
    from core.app import Jobyard
    from dashboard.operations import Actor

MAX_SECRET_FILE_BYTES = 64 * 1024


def _actor() -> Actor:
    from dashboard.auth.roles import Principal, Role
    from dashboard.operations import Actor

    return Actor(Principal(actor_name(), Role.ADMIN))


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


@click.group()
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
@json_option
@with_app
def targets_add(
    app: Jobyard, name: str, role: str, base_url: str, token_file: str, keep_token: bool, as_json: bool
) -> None:
    """Add a target, or update one (its token too, unless --keep-token)."""
    from dashboard import identity_operations as ops
    from jobs.catalog.identity.targets import BadTarget

    token = None if keep_token else _read_secret(token_file, "token")
    try:
        created = ops.save_target(app, _actor(), name, role=role, base_url=base_url, token=token)
    except BadTarget as exc:
        raise CliError(str(exc)) from None
    if as_json:
        saved = ops.target(app, _actor().principal, name)
        echo_json({**saved.__dict__, "created": created})
    else:
        click.echo(f"target {name} {'added' if created else 'updated'} ({role}, {base_url.rstrip('/')})")


@targets.command("list")
@json_option
@with_app
def targets_list(app: Jobyard, as_json: bool) -> None:
    """List targets (tokens masked)."""
    from dashboard import identity_operations as ops

    found = ops.list_targets(app, _actor().principal)
    if as_json:
        echo_json([t.__dict__ for t in found])
        return
    echo_table(("NAME", "ROLE", "URL", "TOKEN"), [(t.name, t.role, t.base_url, t.token_masked) for t in found])


@targets.command("remove")
@click.argument("name")
@json_option
@with_app
def targets_remove(app: Jobyard, name: str, as_json: bool) -> None:
    """Remove a target and its token."""
    from dashboard import identity_operations as ops
    from dashboard.operations import NotFound

    try:
        ops.remove_target(app, _actor(), name)
    except NotFound as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json({"name": name, "removed": True})
    else:
        click.echo(f"target {name} removed")


@click.group()
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
@json_option
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
    from dashboard import identity_operations as ops
    from jobs.catalog.identity.identities import BadIdentity, NewIdentity

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
@click.option("--status", type=click.Choice(IDENTITY_DISPLAY_STATUSES))
@click.option("--type", "identity_type", type=click.Choice(IDENTITY_TYPES))
@click.option("--limit", type=click.IntRange(1, IDENTITY_PAGE_SIZE), default=IDENTITY_PAGE_SIZE, show_default=True)
@json_option
@with_app
def identities_list(app: Jobyard, status: str | None, identity_type: str | None, limit: int, as_json: bool) -> None:
    """List identities, newest first."""
    from dashboard import identity_operations as ops

    page = ops.list_identities(
        app, _actor().principal, ops.IdentityFilter(status=status, identity_type=identity_type), limit=limit
    )
    if as_json:
        echo_json(page.identities)
        return
    echo_table(
        ("ID", "USER NAME", "TYPE", "STATUS", "PLATFORM", "EMAIL"),
        [(i["id"], i["user_name"], i["identity_type"], i["display_status"], i["platform"], i["email"])
         for i in page.identities],
    )  # fmt: skip
