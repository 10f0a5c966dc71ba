"""The OpenAPI 3.1 document, built from the route table (dashboard/api/routes.py) and the schemas."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Response

from dashboard.api.routes import CONVERTERS, OPERATIONS, Call, Operation, Reply, api_url, operation, reply
from dashboard.api.schemas import COMPONENTS, ref

ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Malformed JSON, a body that is not an object, or (session callers) no CSRF token."),
    401: ("Unauthorized", "No credential, or an unknown or revoked token."),
    403: ("Forbidden", "The caller's role does not allow this."),
    404: ("NotFound", "No such object, or one the caller may not see."),
    409: ("Conflict", "The object's state does not allow this."),
    413: ("PayloadTooLarge", "The request body or the uploaded file is larger than allowed."),
    422: ("Unprocessable", "Bad fields or query parameters; `errors` names every one."),
}
DESCRIPTION = """\
Jobyard's API for services: start and follow runs, act on them, read job types, manage schedules, create
and import identities, manage the SCIM targets they are provisioned to.

Authenticate with `Authorization: Bearer jy_...` (tokens: `jobyard tokens create`). A browser session
works too, with its CSRF token in `X-CSRFToken` on POST, PUT and DELETE. Every answer is JSON; errors are
`{"error": "..."}`, and a 422 adds `errors: [{"field", "message"}]` naming every bad field. Unknown query
parameters and unknown body fields are refused (422). What a caller sees follows its role: objects
outside its view answer 404."""


def _api_version() -> str:
    try:
        return version("jobyard")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def _parameters(op: Operation) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in op.path_params:
        schema: dict[str, Any] = {"type": "string"}
        if name in CONVERTERS:
            schema["pattern"] = f"^{CONVERTERS[name].regex}$"
        found.append({"name": name, "in": "path", "required": True, "schema": schema})
    for param in op.query:
        entry: dict[str, Any] = {"name": param.name, "in": "query", "required": False, "description": param.description}
        if param.repeatable:
            entry.update(schema={"type": "array", "items": param.schema}, style="form", explode=True)
        else:
            entry["schema"] = param.schema
        found.append(entry)
    return found


def _success(answer: Reply) -> dict[str, Any]:
    described: dict[str, Any] = {
        "description": answer.description,
        "content": {"application/json": {"schema": answer.schema}},
    }
    if answer.location:
        described["headers"] = {
            "Location": {
                "description": "the created object in this API",
                "schema": {"type": "string"},
                "required": True,
            }
        }
    return described


def _operation(op: Operation) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {
            **{str(a.status): _success(a) for a in op.replies},
            **{str(code): {"$ref": f"#/components/responses/{ERRORS[code][0]}"} for code in op.error_statuses},
        },
    }
    if op.description:
        described["description"] = op.description
    if parameters := _parameters(op):
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = {"required": op.body_required, "content": {"application/json": {"schema": op.body}}}
    elif op.body_content is not None:
        content = {media: {"schema": schema} for media, schema in op.body_content.items()}
        described["requestBody"] = {"required": op.body_required, "content": content}
    return described


def document(server_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(OPERATIONS, key=lambda o: o.path):
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    responses = {
        name: {"description": text, "content": {"application/json": {"schema": ref("Error")}}}
        for name, text in ERRORS.values()
    }
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"description": "how to authenticate", "schema": {"type": "string"}}
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Jobyard API", "version": _api_version(), "description": DESCRIPTION},
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": n} for n in ("runs", "types", "schedules", "identities", "targets", "meta")],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "responses": responses,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API token, `jy_...`"}
            },
        },
    }


@operation(
    "GET",
    "/openapi.json",
    summary="This document",
    tag="meta",
    replies=(Reply(200, "The OpenAPI 3.1 document of this API.", ref("OpenApiDocument")),),
)
def openapi_document(call: Call) -> Response:
    own_url = api_url("openapi_document")
    return reply(document(own_url[: -len("/openapi.json")]))
