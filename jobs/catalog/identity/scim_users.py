"""What the identity jobs do to users on a SCIM target: find one by userName, create, patch, deactivate.

Every call goes through `targets.call`, which retries network failures; SCIM errors (a 409, a 400) reach the
caller as scim2-models' SCIMException subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.catalog.identity.targets import call

if TYPE_CHECKING:
    from scim2_client.engines.httpx2 import SyncSCIMClient


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


class ForeignAccount(LookupError):
    """The target already holds a user of that userName that Jobyard did not create for this identity."""

    def __init__(self, user_name: str, external_id: str | None) -> None:
        super().__init__(
            f"the target already holds a user named {user_name!r} that Jobyard did not create for this identity "
            f"(externalId {external_id!r}); remove or rename it there, or give the identity another user name"
        )


@dataclass(frozen=True)
class Ensured:
    remote_id: str
    created: bool
    # The account existed and was not created by Jobyard for this identity (a directory source's own user).
    foreign: bool = False


def ensure_user(scim: SyncSCIMClient, attributes: dict[str, Any], *, adopt_foreign: bool = False) -> Ensured:
    """Creates the user `attributes` describes unless the target already holds one with its userName.

    An existing user carrying this identity's externalId is Jobyard's own, created by an attempt that died
    before recording it, and is taken over. Any other is someone else's account: taking it over would let a
    later rotation reset a stranger's password, so it is refused (ForeignAccount) unless `adopt_foreign`,
    which the caller grants only when the identity was read from that very target (directory sync)."""
    from scim2_models import UniquenessException

    model = user_model(scim)
    existing = find_user(scim, attributes["user_name"])
    if existing is None:
        try:
            created: Any = call(scim.create, model(**attributes))
        except UniquenessException:
            # Created by someone else between the lookup and the create.
            existing = find_user(scim, attributes["user_name"])
            if existing is None:
                raise
        else:
            return Ensured(str(created.id), created=True)
    if existing.external_id == attributes.get("external_id"):
        return Ensured(str(existing.id), created=False)
    if not adopt_foreign:
        raise ForeignAccount(attributes["user_name"], existing.external_id)
    return Ensured(str(existing.id), created=False, foreign=True)


def patch_user(scim: SyncSCIMClient, user_id: str, changes: dict[str, Any]) -> None:
    """Replaces the given attributes (SCIM paths such as ``password``, ``active``, ``displayName``)."""
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": path, "value": value} for path, value in changes.items()],
    }
    call(scim.modify, user_model(scim), user_id, patch)
