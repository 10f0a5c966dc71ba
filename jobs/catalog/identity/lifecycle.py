"""What happens to an existing identity when it moves, leaves or rejoins: its row in ``identities`` and its
accounts on the SCIM targets (JML automation, jml.py).

An identity's accounts are the ``remote_id``s of its done provisioning operations. Each change is made on the
targets FIRST and recorded in ``identities`` after: when a target fails midway, the row still shows the change
as not made, so the run's next attempt makes it again (a SCIM PATCH that replaces a value is idempotent)
rather than concluding that there is nothing left to do. An account the target no longer holds is reported
and skipped: no retry can bring it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update

from core.db import utcnow
from jobs.catalog.identity.models import identities_table, operations_table
from jobs.catalog.identity.scim_users import user_model
from jobs.catalog.identity.targets import TargetNotFound, call, connect

ATTRIBUTES = ("display_name", "email", "department", "title")
# Identity attribute -> the SCIM path it is kept under on the targets. Department is not: provisioning does not
# send it (it belongs to the enterprise extension, which not every target serves).
SCIM_PATHS = {"display_name": "displayName", "title": "title", "email": "emails"}
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class UnreachableAccount(RuntimeError):
    """An account on a target Jobyard no longer has configured; another attempt cannot reach it."""


@dataclass
class Outcome:
    changed: list[str] = field(default_factory=list)  # identity attributes (or "disabled") changed
    accounts: list[str] = field(default_factory=list)  # "<target>:<remote id>" patched
    missing: list[str] = field(default_factory=list)  # accounts the target no longer holds


def find(engine: Engine, user_name: str) -> Any | None:
    """The identity named `user_name` (compared case-insensitively, as `identities.create` does), or None."""
    i = identities_table.c
    with engine.connect() as conn:
        return conn.execute(select(identities_table).where(i.user_name_folded == user_name.lower())).first()


def accounts(engine: Engine, identity_id: int) -> list[tuple[str, str]]:
    """(target, remote id) of each account provisioning made for the identity."""
    o = operations_table.c
    query = (
        select(o.target, o.remote_id)
        .where(o.identity_id == identity_id, o.done_at.is_not(None), o.remote_id.is_not(None))
        .order_by(o.target, o.remote_id)
    )
    with engine.connect() as conn:
        return sorted({(row.target, row.remote_id) for row in conn.execute(query)})


def _operations(values: dict[str, Any]) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = []
    for path, value in values.items():
        if value is None:
            operations.append({"op": "remove", "path": path})
        elif path == "emails":
            operations.append(
                {"op": "replace", "path": path, "value": [{"value": value, "primary": True, "type": "work"}]}
            )
        else:
            operations.append({"op": "replace", "path": path, "value": value})
    return operations


def patch_accounts(engine: Engine, identity_id: int, values: dict[str, Any], outcome: Outcome) -> None:
    """Sets `values` (SCIM path -> value, None removes it) on each of the identity's accounts."""
    if not values:
        return
    from scim2_models import NotFoundException

    patch = {"schemas": [PATCH_SCHEMA], "Operations": _operations(values)}
    for target, remote_id in accounts(engine, identity_id):
        try:
            with connect(engine, target) as scim:
                call(scim.modify, user_model(scim), remote_id, patch)
        except TargetNotFound:
            raise UnreachableAccount(
                f"account {remote_id} is on target {target!r}, which is no longer configured"
            ) from None
        except NotFoundException:
            outcome.missing.append(f"{target}:{remote_id}")
        else:
            outcome.accounts.append(f"{target}:{remote_id}")


def _record(engine: Engine, identity_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(identities_table).where(identities_table.c.id == identity_id).values(**values, updated_at=utcnow())
        )


def update_attributes(engine: Engine, identity: Any, attributes: dict[str, Any]) -> Outcome:
    """Gives the identity the `attributes` given (display_name, email, department, title; missing ones are left
    alone); nothing happens when they already match."""
    outcome = Outcome()
    wanted = {name: attributes[name] or None for name in ATTRIBUTES if name in attributes}
    outcome.changed = [name for name, value in wanted.items() if getattr(identity, name) != value]
    if not outcome.changed:
        return outcome
    remote = {SCIM_PATHS[name]: wanted[name] for name in outcome.changed if name in SCIM_PATHS}
    patch_accounts(engine, identity.id, remote, outcome)
    _record(engine, identity.id, **{name: wanted[name] for name in outcome.changed})
    return outcome


def _set_disabled(engine: Engine, identity: Any, disabled: bool) -> Outcome:
    outcome = Outcome()
    if bool(identity.disabled) == disabled:
        return outcome
    patch_accounts(engine, identity.id, {"active": not disabled}, outcome)
    _record(engine, identity.id, disabled=disabled)
    outcome.changed = ["disabled"]
    return outcome


def disable(engine: Engine, identity: Any) -> Outcome:
    """Disables the identity and deactivates its accounts; nothing happens when it is disabled already."""
    return _set_disabled(engine, identity, True)


def enable(engine: Engine, identity: Any) -> Outcome:
    """Enables the identity and reactivates its accounts; nothing happens when it is enabled already."""
    return _set_disabled(engine, identity, False)
