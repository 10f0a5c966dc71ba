"""The route table: each operation declared once, with what it takes and what it answers.

`operation(...)` records a view in `OPERATIONS`; the blueprint routes from that table (`dispatcher`) and
the OpenAPI document is built from it (dashboard/api/openapi.py), so the two cannot drift apart. The
dispatcher does what every operation needs, in this order: refuses writes from read-only principals
(403), checks the query string against the declared parameters (422), and gives the view a `Call`.
Bodies are parsed when the view asks (`call.body()`), after it has looked up the object named by the
path, so that a missing object answers 404 whatever the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Response, jsonify, request, url_for
from werkzeug.routing import BaseConverter

from dashboard.api.errors import ApiError, FieldProblem, invalid
from dashboard.api.schemas import RUN_ID_PATTERN
from dashboard.api.validation import parse_body, parse_query_value, read_body
from dashboard.auth.roles import Principal
from dashboard.operations import Actor
from dashboard.security import current_principal, jobyard_of_app

if TYPE_CHECKING:
    from core.app import Jobyard

PATH_PARAMETER = re.compile(r"\{(\w+)\}")


class RunIdConverter(BaseConverter):
    """Run ids are uuid4 hex; matching only those keeps `/runs/bulk` from reading as the run "bulk"."""

    regex = RUN_ID_PATTERN


# Path parameters with a converter of their own, registered under the parameter's name; the others take
# any one path segment.
CONVERTERS: dict[str, type[BaseConverter]] = {"run_id": RunIdConverter}


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict[str, Any]  # of one value
    description: str
    repeatable: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    description: str
    schema: dict[str, Any]
    location: bool = False  # a Location header names the created object


@dataclass
class Call:
    """What a view works with."""

    app: Jobyard
    principal: Principal
    actor: Actor
    query: dict[str, Any]
    body_schema: dict[str, Any] | None
    body_required: bool
    _body: dict[str, Any] | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        if self._body is None:
            assert self.body_schema is not None, "this operation declares no body"
            self._body = parse_body(request.get_data(cache=True), self.body_schema, required=self.body_required)
        return self._body

    def body_and_problems(self) -> tuple[dict[str, Any], list[FieldProblem]]:
        """For views that check the meaning of the well-formed fields too, so that one answer names
        every bad field."""
        assert self.body_schema is not None, "this operation declares no body"
        return read_body(request.get_data(cache=True), self.body_schema, required=self.body_required)


View = Callable[..., Response]


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str  # OpenAPI template, relative to /api/v1: "/runs/{run_id}"
    summary: str
    description: str
    tag: str
    replies: tuple[Reply, ...]
    view: View
    query: tuple[QueryParam, ...] = ()
    body: dict[str, Any] | None = None
    body_required: bool = False
    writes: bool = False  # refused to read-only principals; the service layer may refuse other roles too
    conflict: bool = False  # the object's state may not allow it (409)
    # A body in other media types than JSON (an uploaded file): media type -> schema, for the document only;
    # the view reads and checks it itself.
    body_content: dict[str, Any] | None = None
    extra_errors: tuple[int, ...] = ()  # further error statuses: 403 on a read some roles may not make, 413

    @property
    def path_params(self) -> list[str]:
        return PATH_PARAMETER.findall(self.path)

    @property
    def rule(self) -> str:
        """The Flask rule: `{run_id}` becomes `<run_id:run_id>`, any other `{name}` becomes `<name>`."""

        def convert(match: re.Match[str]) -> str:
            name = match.group(1)
            return f"<{name}:{name}>" if name in CONVERTERS else f"<{name}>"

        return PATH_PARAMETER.sub(convert, self.path)

    @property
    def error_statuses(self) -> list[int]:
        """Every error status the operation can answer, besides 401 (no or a bad credential)."""
        statuses = {401, 422}  # 422: an unknown or bad query parameter, at least
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            statuses.add(400)  # a session without its CSRF token; malformed JSON
        if self.writes:
            statuses.add(403)
        if self.path_params:
            statuses.add(404)
        if self.conflict:
            statuses.add(409)
        statuses.update(self.extra_errors)
        return sorted(statuses)


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    replies: tuple[Reply, ...],
    description: str = "",
    query: tuple[QueryParam, ...] = (),
    body: dict[str, Any] | None = None,
    body_required: bool = False,
    writes: bool = False,
    conflict: bool = False,
    body_content: dict[str, Any] | None = None,
    extra_errors: tuple[int, ...] = (),
) -> Callable[[View], View]:
    def declare(view: View) -> View:
        OPERATIONS.append(
            Operation(
                operation_id=view.__name__, method=method, path=path, summary=summary, description=description,
                tag=tag, replies=replies, view=view, query=query, body=body, body_required=body_required,
                writes=writes, conflict=conflict, body_content=body_content, extra_errors=extra_errors,
            )
        )  # fmt: skip
        return view

    return declare


def _query(declared: tuple[QueryParam, ...]) -> dict[str, Any]:
    by_name = {q.name: q for q in declared}
    problems = [
        FieldProblem(name, f"is not a parameter of this operation (known: {', '.join(by_name) or 'none'})")
        for name in request.args
        if name not in by_name
    ]
    values: dict[str, Any] = {}
    for param in declared:
        raw = request.args.getlist(param.name)
        if not raw:
            if "default" in param.schema:
                values[param.name] = param.schema["default"]
            continue
        if len(raw) > 1 and not param.repeatable:
            problems.append(FieldProblem(param.name, "given more than once"))
            continue
        parsed = []
        for text in raw:
            value, problem = parse_query_value(param.name, param.schema, text)
            if problem is not None:
                problems.append(problem)
            parsed.append(value)
        values[param.name] = parsed if param.repeatable else parsed[0]
    if problems:
        raise invalid(problems)
    return values


def dispatcher(op: Operation) -> View:
    def dispatch(**path_values: str) -> Response:
        principal = current_principal()
        if op.writes and principal.read_only:
            raise ApiError(403, f"a {principal.role.value} may only read")
        call = Call(
            app=jobyard_of_app(),
            principal=principal,
            actor=Actor(principal, request.remote_addr),
            query=_query(op.query),
            body_schema=op.body,
            body_required=op.body_required,
        )
        return op.view(call, **path_values)

    dispatch.__name__ = op.operation_id
    return dispatch


def reply(payload: Any, status: int = 200, *, location: str | None = None) -> Response:
    response = jsonify(payload)
    response.status_code = status
    if location is not None:
        response.headers["Location"] = location
    return response


def api_url(operation_id: str, **values: Any) -> str:
    return url_for(f"api_v1.{operation_id}", **values)
