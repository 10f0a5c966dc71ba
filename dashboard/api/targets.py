"""SCIM targets, for admins only: list, read, create or update, remove.

The bearer token is write-only: PUT takes it, every answer shows it masked. Other roles get 403 whatever the
target, so that they learn nothing of which targets exist.
"""

from __future__ import annotations

from flask import Response

from dashboard import identity_operations as ops
from dashboard.api.errors import FieldProblem, invalid
from dashboard.api.routes import Call, Reply, api_url, operation, reply
from dashboard.api.schemas import ref
from jobs.catalog.identity.targets import BadTarget, Target

ADMIN_ONLY = "Admins only (403 for other roles)."


def target_out(target: Target) -> dict[str, str]:
    return {"name": target.name, "role": target.role, "base_url": target.base_url, "token_masked": target.token_masked}


@operation(
    "GET",
    "/targets",
    summary="List SCIM targets",
    description=f"{ADMIN_ONLY} Tokens are masked.",
    tag="targets",
    replies=(Reply(200, "The targets.", ref("TargetList")),),
    extra_errors=(403,),
)
def list_targets(call: Call) -> Response:
    return reply({"targets": [target_out(t) for t in ops.list_targets(call.app, call.principal)]})


@operation(
    "GET",
    "/targets/{target_name}",
    summary="Read a SCIM target",
    description=f"{ADMIN_ONLY} Its token is masked.",
    tag="targets",
    replies=(Reply(200, "The target.", ref("Target")),),
    extra_errors=(403,),
)
def get_target(call: Call, target_name: str) -> Response:
    return reply(target_out(ops.target(call.app, call.principal, target_name)))


@operation(
    "PUT",
    "/targets/{target_name}",
    summary="Create or update a SCIM target",
    description=f"{ADMIN_ONLY} `token` is required for a new target; left out on an update, the stored token "
    "stays. The token goes to the vault and is never shown again. Nothing is checked against the service itself: "
    "a wrong URL or token shows in the first provisioning run.",
    tag="targets",
    body=ref("PutTarget"),
    body_required=True,
    replies=(
        Reply(200, "The target, updated.", ref("Target")),
        Reply(201, "The target, created.", ref("Target"), location=True),
    ),
    writes=True,
)
def put_target(call: Call, target_name: str) -> Response:
    ops.require_admin(call.principal)  # 403 before the body is read
    body = call.body()
    try:
        created = ops.save_target(
            call.app, call.actor, target_name, role=body["role"], base_url=body["base_url"], token=body.get("token")
        )
    except BadTarget as exc:
        field = "target_name" if exc.field == "name" else exc.field
        raise invalid([FieldProblem(field, exc.problem)]) from None
    saved = target_out(ops.target(call.app, call.principal, target_name))
    if created:
        return reply(saved, 201, location=api_url("get_target", target_name=target_name))
    return reply(saved)


@operation(
    "DELETE",
    "/targets/{target_name}",
    summary="Remove a SCIM target",
    description=f"{ADMIN_ONLY} Its token leaves the vault. Identities already provisioned there keep their record.",
    tag="targets",
    replies=(Reply(200, "Removed.", ref("TargetDeleted")),),
    writes=True,
)
def delete_target(call: Call, target_name: str) -> Response:
    ops.remove_target(call.app, call.actor, target_name)
    return reply({"name": target_name, "deleted": True})
