"""Identities: list and read them (every role but those limited to a domain: 403), create one or import a CSV file
of them (admins; operators granted the job types involved, see dashboard/identity_operations.py).

Creating goes through identities.create (dashboard/identity_operations.py): a bad request is a 422 naming every
bad field, a user name already taken a 409. An import stores the file (uploads.store) and starts Bulk import on
it, answering 202 with the run to follow. Credentials are taken, never given back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, request

from core import defaults
from dashboard import identity_operations as ops
from dashboard.api import identity_schemas
from dashboard.api.errors import ApiError, FieldProblem, invalid, invalid_field
from dashboard.api.routes import Call, QueryParam, Reply, api_url, operation, reply
from dashboard.api.runs import page_url
from dashboard.api.schemas import ref
from dashboard.api.validation import top_fields
from dashboard.operations import NotFound
from jobs.catalog.identity.identities import BadIdentity, IdentityExists, NewIdentity
from jobs.catalog.identity.uploads import BadUpload

MAX_ID = 2**31 - 1  # identities.id is an INTEGER
NEW_FIELDS = ("user_name", "identity_type", "display_name", "email", "platform", "department", "title",
              "credential", "idp_target")  # fmt: skip
CSV_TYPES = ("text/csv", "text/plain")


def identity_id_of(text: str) -> int:
    """The identity a path names; 404 for anything that cannot be one."""
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_ID:
        raise NotFound(f"no identity {text!r}")
    return int(text)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def identity_out(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: _json(v) for k, v in detail.items()}


@operation(
    "GET",
    "/identities",
    summary="List identities",
    description="Newest first, in pages cut by `cursor`. Not for a principal limited to a domain (403): "
    "identities belong to none. `status` is the display status: a pending identity "
    "whose provisioning run failed or was cancelled is `failed`, one whose run is waiting for another attempt "
    "`retrying`.",
    tag="identities",
    query=(
        QueryParam("status", identity_schemas.DISPLAY_STATUS, "only identities showing this status"),
        QueryParam("type", identity_schemas.IDENTITY_TYPE, "only identities of this type"),
        QueryParam("q", {"type": "string", "maxLength": 200}, "part of the user name, any case"),
        QueryParam("cursor", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "`next_cursor` of the last page"),
        QueryParam(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": ops.MAX_PAGE_SIZE, "default": ops.PAGE_SIZE},
            "identities per page",
        ),
    ),
    replies=(Reply(200, "A page of identities.", ref("IdentityPage")),),
    extra_errors=(403,),
)
def list_identities(call: Call) -> Response:
    query = call.query
    filters = ops.IdentityFilter(status=query.get("status"), identity_type=query.get("type"), text=query.get("q"))
    page = ops.list_identities(call.app, call.principal, filters, before_id=query.get("cursor"), limit=query["limit"])
    return reply({"identities": [identity_out(i) for i in page.identities], "next_cursor": page.next_cursor})


@operation(
    "GET",
    "/identities/{identity_id}",
    summary="Read an identity",
    description="Its attributes, display status and provisioning operations, each with the run doing it. Not "
    "for a principal limited to a domain (403, whether the identity exists or not).",
    tag="identities",
    replies=(Reply(200, "The identity.", ref("IdentityDetail")),),
    extra_errors=(403,),
)
def get_identity(call: Call, identity_id: str) -> Response:
    return reply(identity_out(ops.identity(call.app, call.principal, identity_id_of(identity_id))))


def _new_identity(body: dict[str, Any], malformed: set[str]) -> NewIdentity:
    """The request as identities.create takes it; malformed fields count as not given (they are reported)."""
    values = {name: body.get(name) for name in NEW_FIELDS if name not in malformed}
    return NewIdentity(
        user_name=values.get("user_name") or "", identity_type=values.get("identity_type") or "",
        **{name: values.get(name) or None for name in NEW_FIELDS[2:]},
    )  # fmt: skip


@operation(
    "POST",
    "/identities",
    summary="Create an identity",
    description="Admins, and operators granted every provisioning job type the identity's provisioning starts "
    "(a self-credentialed one: either of identity.create_domain_user, identity.provision_idp_user); else a 403. "
    "Provisioning starts at once (seed 003): a human interactive identity gets "
    "a domain user on its platform (when that is a domain target) and a user at the identity provider; a managed "
    "shared credential a domain user; a self-credentialed type (shared_external, service_account, api_key, "
    "oauth_client) is provisioned at once, its `credential` kept in the vault. Every bad field is named (422) "
    "and nothing is stored; a user name already taken is a 409.",
    tag="identities",
    body=ref("NewIdentity"),
    body_required=True,
    replies=(Reply(201, "The identity, with the runs provisioning it.", ref("IdentityDetail"), location=True),),
    writes=True,
    conflict=True,
)
def create_identity(call: Call) -> Response:
    ops.require_creator(call.app, call.principal)
    body, problems = call.body_and_problems()
    if problems:
        malformed = top_fields(problems)
        try:
            ops.check_identity(call.app, call.actor, _new_identity(body, malformed))
        except BadIdentity as exc:
            problems.extend(FieldProblem(e.field, e.problem) for e in exc.errors if e.field not in malformed)
        raise invalid(problems)
    try:
        created = ops.create_identity(call.app, call.actor, _new_identity(body, set()))
    except IdentityExists as exc:
        raise ApiError(409, str(exc.errors[0])) from None
    except BadIdentity as exc:
        raise invalid(FieldProblem(e.field, e.problem) for e in exc.errors) from None
    url = api_url("get_identity", identity_id=created.identity_id)
    return reply(identity_out(ops.identity(call.app, call.principal, created.identity_id)), 201, location=url)


def _upload() -> tuple[str, bytes]:
    """(filename, content) of the request: a multipart `file` part, or a CSV body."""
    if request.mimetype == "multipart/form-data":
        stray = [name for name in (*request.form, *request.files) if name != "file"]
        problems = [FieldProblem(name, "is not a known field (known: file)") for name in stray]
        sent = request.files.get("file")
        if sent is None:
            problems.append(FieldProblem("file", "is required: the CSV file, as a file part"))
        if problems or sent is None:
            raise invalid(problems)
        return sent.filename or "upload.csv", sent.read(defaults.BULK_IMPORT_MAX_BYTES + 1)
    if request.mimetype in CSV_TYPES:
        return request.args.get("filename") or "upload.csv", request.get_data(cache=False)
    raise invalid_field("Content-Type", "must be multipart/form-data (a `file` part) or text/csv")


@operation(
    "POST",
    "/identities/imports",
    summary="Import identities from a CSV file",
    description="Admins, and operators granted identity.bulk_import. Send the file as a multipart `file` part, "
    "or as a `text/csv` body (`filename` names it). The file is stored and Bulk import (identity.bulk_import) "
    "starts on it: follow the run for the per-row results. An empty file, one that is not UTF-8 text, or one "
    f"holding a NUL is a 422; one larger than {defaults.BULK_IMPORT_MAX_BYTES} bytes a 413.",
    tag="identities",
    query=(
        QueryParam("dry_run", identity_schemas.FLAG, "check every row and create nothing"),
        QueryParam("continue_on_error", identity_schemas.FLAG, "go on past a bad row (its error is reported)"),
        QueryParam("filename", {"type": "string", "minLength": 1, "maxLength": 255}, "the file's name, for CSV"),
    ),
    body_content={
        "multipart/form-data": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary", "description": "the CSV file"}},
            "required": ["file"],
            "additionalProperties": False,
        },
        "text/csv": {"type": "string", "description": "the CSV file itself"},
    },
    body_required=True,
    replies=(Reply(202, "Accepted: the import run.", ref("ImportStarted"), location=True),),
    writes=True,
    conflict=True,
    extra_errors=(413,),
)
def import_identities(call: Call) -> Response:
    ops.require_importer(call.app, call.principal)  # 403 before the body is read
    filename, data = _upload()
    if len(data) > defaults.BULK_IMPORT_MAX_BYTES:
        raise ApiError(413, f"the file is larger than {defaults.BULK_IMPORT_MAX_BYTES} bytes")
    dry_run, keep_going = call.query["dry_run"] == "true", call.query["continue_on_error"] == "true"
    try:
        started = ops.start_import(call.app, call.actor, filename, data, dry_run=dry_run, continue_on_error=keep_going)
    except BadUpload as exc:
        raise invalid_field("file", str(exc)) from None
    url = api_url("get_run", run_id=started.run_id)
    payload = {
        "run_id": started.run_id, "upload_id": started.upload_id, "dry_run": dry_run, "continue_on_error": keep_going,
        "url": url, "page_url": page_url(call, started.run_id),
    }  # fmt: skip
    return reply(payload, 202, location=url)
