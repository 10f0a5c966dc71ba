"""API errors: one JSON shape, `{"error": ...}`, plus `errors` (every bad field) on 422.

The service layer's exceptions map to status codes here, so every view can let them propagate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import Blueprint, Response, jsonify
from werkzeug.exceptions import InternalServerError

from dashboard import operations
from jobs.params import InvalidJobRequest
from jobs.run_search import BadFilter
from jobs.type_settings import BadRecipients
from scheduler.triggers import TriggerError


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class ApiError(Exception):
    def __init__(self, status: int, message: str, problems: Iterable[FieldProblem] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = sorted(problems, key=lambda p: p.field)

    def response(self) -> Response:
        body: dict[str, object] = {"error": self.message}
        if self.status == 422:
            body["errors"] = [{"field": p.field, "message": p.message} for p in self.problems]
        response = jsonify(body)
        response.status_code = self.status
        return response


def invalid(problems: Iterable[FieldProblem]) -> ApiError:
    return ApiError(422, "invalid request", problems)


def invalid_field(field: str, message: str) -> ApiError:
    return invalid([FieldProblem(field, message)])


def param_problems(exc: InvalidJobRequest, prefix: str = "params.") -> list[FieldProblem]:
    """Parameter errors name the parameter; in a body they sit under `params`."""
    return [FieldProblem(prefix + e.field, e.problem) for e in exc.errors]


def register_error_handlers(blueprint: Blueprint) -> None:
    @blueprint.errorhandler(InternalServerError)
    def server_error(_exc: InternalServerError) -> Response:
        # Flask has logged the exception already; the caller gets JSON, like every other answer here.
        return ApiError(500, "internal error; the server log has the details").response()

    @blueprint.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return exc.response()

    @blueprint.errorhandler(operations.NotFound)
    def not_found(exc: operations.NotFound) -> Response:
        return ApiError(404, str(exc)).response()

    @blueprint.errorhandler(operations.Forbidden)
    def forbidden(exc: operations.Forbidden) -> Response:
        return ApiError(403, str(exc)).response()

    @blueprint.errorhandler(operations.Conflict)
    def conflict(exc: operations.Conflict) -> Response:
        return ApiError(409, str(exc)).response()

    # The views translate these with the field they concern; these are the fallbacks.
    @blueprint.errorhandler(InvalidJobRequest)
    def invalid_job(exc: InvalidJobRequest) -> Response:
        return invalid(param_problems(exc, prefix="")).response()

    @blueprint.errorhandler(BadFilter)
    def bad_filter(exc: BadFilter) -> Response:
        return invalid_field(exc.field, exc.message).response()

    @blueprint.errorhandler(TriggerError)
    def bad_trigger(exc: TriggerError) -> Response:
        return invalid_field("trigger", str(exc)).response()

    @blueprint.errorhandler(BadRecipients)
    def bad_recipients(exc: BadRecipients) -> Response:
        return invalid_field("addresses", str(exc)).response()
