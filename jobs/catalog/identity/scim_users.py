"""What the identity jobs do to users on a SCIM target: find one by userName, create, patch, deactivate.

Every call goes through `targets.call`, which retries network failures; SCIM errors (a 409, a 400) reach the
caller as scim2-models' SCIMException subclasses.
"""

from __future__ import annotations

from typing import Any

from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import UniquenessException

from jobs.catalog.identity.targets import call


def user_model(scim: SyncSCIMClient) -> Any:
    model = scim.get_resource_model("User")
    if model is None:
        raise LookupError("the SCIM target serves no User resource type")
    return model


def find_user(scim: SyncSCIMClient, user_name: str) -> Any | None:
    """The target's user named `user_name` (SCIM compares userName case-insensitively), or None."""
    quoted = user_name.replace("\\", "\\\\").replace('"', '\\"')
    found = call(scim.query, user_model(scim), query_parameters={"filter": f'userName eq "{quoted}"'})
    resources = getattr(found, "resources", None) or []
    return resources[0] if resources else None


def ensure_user(scim: SyncSCIMClient, attributes: dict[str, Any]) -> tuple[str, bool]:
    """Creates the user `attributes` describes unless the target already has one with its userName, which is
    adopted (a previous attempt may have created it and died before recording it). Returns (id, created)."""
    model = user_model(scim)
    existing = find_user(scim, attributes["user_name"])
    if existing is not None:
        return str(existing.id), False
    try:
        created: Any = call(scim.create, model(**attributes))
    except UniquenessException:
        # Created by someone else between the lookup and the create: adopt it too.
        existing = find_user(scim, attributes["user_name"])
        if existing is None:
            raise
        return str(existing.id), False
    return str(created.id), True


def patch_user(scim: SyncSCIMClient, user_id: str, changes: dict[str, Any]) -> None:
    """Replaces the given attributes (SCIM paths such as ``password``, ``active``, ``displayName``)."""
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": path, "value": value} for path, value in changes.items()],
    }
    call(scim.modify, user_model(scim), user_id, patch)
