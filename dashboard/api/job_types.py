"""Job types the caller may see, with the JSON schema of their parameters."""

from __future__ import annotations

from typing import Any

from flask import Response

from dashboard import operations
from dashboard.api.routes import Call, Reply, operation, reply
from dashboard.api.schemas import ref
from jobs.registry import JobType
from scheduler.triggers import Trigger


def trigger_out(trigger: Trigger) -> dict[str, Any]:
    return {"kind": trigger.kind, "value": trigger.as_text(), "timezone": trigger.timezone,
            "description": trigger.describe()}  # fmt: skip


def type_out(call: Call, declared: JobType) -> dict[str, Any]:
    return {
        "name": declared.name,
        "title": declared.title,
        "description": declared.description,
        "queue": declared.queue,
        "domain": declared.domain,
        "max_attempts": declared.retry.max_attempts,
        "timeout_s": declared.timeout_s,
        "exclusive": declared.exclusive,
        "default_schedule": trigger_out(declared.default_schedule) if declared.default_schedule else None,
        "params_schema": declared.schema(),
        "may_start": call.principal.may_start(declared),
        "may_configure": call.principal.may_configure(declared),
    }


@operation(
    "GET",
    "/types",
    summary="List job types",
    description="The job types the caller may see, by name.",
    tag="types",
    replies=(Reply(200, "The job types.", ref("JobTypeList")),),
)
def list_types(call: Call) -> Response:
    return reply({"types": [type_out(call, t) for t in operations.visible_types(call.app, call.principal)]})


@operation(
    "GET",
    "/types/{type_name}",
    summary="Read a job type",
    description="404 for a type that is not declared or that the caller may not see.",
    tag="types",
    replies=(Reply(200, "The job type.", ref("JobType")),),
)
def get_type(call: Call, type_name: str) -> Response:
    return reply(type_out(call, operations.job_type(call.app, call.principal, type_name)))
