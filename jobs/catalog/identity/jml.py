"""Joiner/Mover/Leaver automation (seed 003): what a directory change means for the identity of that user.

Started by Directory sync, one run per event (directory_sync.py), and idempotent: each event compares the
wanted state with the identity's and changes only what differs, so a repeated run does nothing more.

- joiner: no identity → `identities.create` a human interactive one (which starts its provisioning runs);
  a disabled one → its attributes updated, then re-enabled with its accounts; an enabled one → nothing.
- mover:  the identity's display name, email, department and title updated, on its accounts too.
- leaver: the identity disabled and its accounts deactivated.

Runs of one user's events may execute out of order (several workers, retries with backoff), so an event
the source's local copy (``directory_users``, read only) no longer agrees with is skipped as superseded: a
leaver whose user is active again, a joiner or mover whose user has left or moved on since. The later
event's own run brings the identity to the latest state, whichever of the two runs first.

Owns no table: identities.py creates identities, lifecycle.py changes them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from jobs.catalog.identity import identities, lifecycle
from jobs.catalog.identity.identities import BadIdentity, IdentityExists, NewIdentity
from jobs.catalog.identity.lifecycle import ATTRIBUTES, Outcome, UnreachableAccount
from jobs.catalog.identity.models import directory_users_table
from jobs.context import JobContext, PermanentFailure
from jobs.registry import Param, job_type

EVENTS = ("joiner", "mover", "leaver")
BY = "directory sync"
MAX_SOURCE = 190  # "directory:" + source fits identities.source


def _attributes(attributes: dict[str, Any]) -> dict[str, str | None]:
    unknown = sorted(set(attributes) - set(ATTRIBUTES))
    if unknown:
        raise PermanentFailure(f"attributes: unknown attribute(s) {', '.join(unknown)}; known: {', '.join(ATTRIBUTES)}")
    bad = sorted(name for name, value in attributes.items() if value is not None and not isinstance(value, str))
    if bad:
        raise PermanentFailure(f"attributes: {', '.join(bad)} must be strings or null")
    return {name: value or None for name, value in attributes.items()}


def _superseded(ctx: JobContext, event: str, source: str, user_name: str, wanted: dict[str, str | None]) -> str | None:
    """Why a later sync has made this event stale, or None. A joiner then takes the user's attributes as the
    source has them now (a mover may have come first and found no identity to move). A user the source has no
    row for (a run started by hand) is taken as the parameters say."""
    u = directory_users_table.c
    query = select(directory_users_table).where(u.source == source, func.lower(u.user_name) == user_name.lower())
    with ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return None
    current = next((r for r in rows if r.active and r.removed_at is None), None)
    if event == "leaver":
        return None if current is None else "the user is active again"
    if current is None:
        return "the user has left since"
    if event == "joiner":
        wanted.update((name, getattr(current, name)) for name in ATTRIBUTES)
    elif any(getattr(current, name) != value for name, value in wanted.items()):
        return "the user's attributes have changed again since"
    return None


def _report(ctx: JobContext, user_name: str, action: str, outcome: Outcome) -> None:
    changed = f" ({', '.join(outcome.changed)})" if outcome.changed else ""
    ctx.info(f"{user_name}: {action}{changed}")
    for account in outcome.accounts:
        ctx.info(f"{user_name}: account {account} updated")
    for account in outcome.missing:
        ctx.warning(f"{user_name}: account {account} is no longer on its target; skipped")


def _join(
    ctx: JobContext, source: str, user_name: str, attributes: dict[str, str | None], platform: str | None,
    idp_target: str | None,
) -> tuple[str, Outcome, dict[str, str]]:  # fmt: skip
    assert ctx.app is not None
    identity = lifecycle.find(ctx.engine, user_name)
    if identity is None:
        new = NewIdentity(
            user_name=user_name, identity_type="human_interactive", display_name=attributes.get("display_name"),
            email=attributes.get("email"), department=attributes.get("department"), title=attributes.get("title"),
            platform=platform, idp_target=idp_target,
        )  # fmt: skip
        try:
            created = identities.create(ctx.app, new, by=BY, source=f"directory:{source}")
        except IdentityExists:  # created meanwhile (another run, an operator): treat it as found
            identity = lifecycle.find(ctx.engine, user_name)
        except BadIdentity as exc:
            raise PermanentFailure(f"cannot create identity {user_name!r}: {exc}") from None
        else:
            return "created", Outcome(changed=["identity"]), created.runs
    assert identity is not None
    if not identity.disabled:
        return "already enabled, unchanged", Outcome(), {}
    outcome = lifecycle.update_attributes(ctx.engine, identity, attributes)
    enabled = lifecycle.enable(ctx.engine, identity)
    outcome.changed += enabled.changed
    outcome.accounts = sorted({*outcome.accounts, *enabled.accounts})
    outcome.missing = sorted({*outcome.missing, *enabled.missing})
    return "re-enabled", outcome, {}


@job_type(
    "identity.jml",
    title="Joiner/Mover/Leaver automation",
    description="Runs what a directory change means for one user's identity: a joiner gets an identity (and its "
    "provisioning) or is re-enabled, a mover's attributes are updated on the identity and its accounts, a "
    "leaver's identity is disabled and its accounts deactivated. Started by Directory sync.",
    params=[
        Param("event", str, help="joiner, mover or leaver"),
        Param("source", str, help="the directory source the change was seen in (scim:<target> or csv:<path>)"),
        Param("user_name", str, help="the user's userName, which is the identity's"),
        Param("attributes", dict, default={}, help="the user's display_name, email, department and title"),
        Param("platform", str, required=False, help="the domain target a joiner gets its domain user on"),
        Param("idp_target", str, required=False, help="the identity provider a joiner gets its SSO user on"),
    ],
)
def jml(
    ctx: JobContext,
    event: str,
    source: str,
    user_name: str,
    attributes: dict[str, Any],
    platform: str | None = None,
    idp_target: str | None = None,
) -> dict[str, Any]:
    if event not in EVENTS:
        raise PermanentFailure(f"event: must be one of {', '.join(EVENTS)}, got {event!r}")
    if not user_name.strip():
        raise PermanentFailure("user_name: is required")
    if not source.strip() or len(source) > MAX_SOURCE:
        raise PermanentFailure(f"source: must be 1 to {MAX_SOURCE} characters")
    wanted = _attributes(attributes)
    runs: dict[str, str] = {}
    if (stale := _superseded(ctx, event, source, user_name, wanted)) is not None:
        ctx.info(f"{user_name}: {event} superseded by a later directory sync ({stale}); nothing to do")
        return {"event": event, "user_name": user_name, "action": f"superseded: {stale}", "changed": [],
                "accounts": [], "missing_accounts": [], "runs": {}}  # fmt: skip
    try:
        if event == "joiner":
            action, outcome, runs = _join(ctx, source, user_name, wanted, platform, idp_target)
        elif (identity := lifecycle.find(ctx.engine, user_name)) is None:
            action, outcome = "no identity of that name, nothing to do", Outcome()
        elif event == "mover":
            outcome = lifecycle.update_attributes(ctx.engine, identity, wanted)
            action = "updated" if outcome.changed else "unchanged"
        else:
            outcome = lifecycle.disable(ctx.engine, identity)
            action = "disabled" if outcome.changed else "already disabled, unchanged"
    except UnreachableAccount as exc:
        raise PermanentFailure(str(exc)) from None
    _report(ctx, user_name, action, outcome)
    for operation, run_id in runs.items():
        ctx.info(f"{user_name}: {operation} started (run {run_id})")
    return {
        "event": event, "user_name": user_name, "action": action, "changed": outcome.changed,
        "accounts": outcome.accounts, "missing_accounts": outcome.missing, "runs": runs,
    }  # fmt: skip
