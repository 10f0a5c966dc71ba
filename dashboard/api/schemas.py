"""The JSON schemas of the API's bodies, in the form the OpenAPI document publishes them.

Request bodies are checked against these very schemas (dashboard/api/validation.py), so the document
cannot accept a field the server ignores. Response schemas are closed (every field listed and required);
runs are projected onto them (`project`), and the schemathesis tests hold every answer to them.
"""

from __future__ import annotations

from typing import Any

from dashboard.operations import MAX_BULK_RUNS, SKIP_REASONS
from jobs.status import RunStatus
from scheduler.triggers import KINDS

RUN_ID_PATTERN = "[0-9a-f]{32}"
MAX_KEY_LENGTH = 200  # runs.idempotency_key is a String(200)
MAX_ADDRESSES = 50
MAX_BULK_IDS = MAX_BULK_RUNS
BULK_ACTIONS = ("retry", "cancel", "run_again")
SCHEDULE_MODES = ("automatic", "scheduled", "disabled")
ITEM_STATUSES = ("ok", "failed", "skipped")
SKIP_REASON = {"type": "string", "enum": list(SKIP_REASONS)}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **rest: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **rest}


def obj(properties: dict[str, Any], required: tuple[str, ...] | None = None, **rest: Any) -> dict[str, Any]:
    """A closed object; `required` defaults to every property (responses always send every field)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
        **rest,
    }


INSTANT = nullable("string", format="date-time")
TEXT = nullable("string")
COUNT = nullable("integer")
STATUS = {"type": "string", "enum": [s.value for s in RunStatus]}
ANY_JSON: dict[str, Any] = {"description": "any JSON value"}
ADDRESS_LIST = {"type": "array", "items": {"type": "string", "maxLength": 320}, "maxItems": MAX_ADDRESSES}

PROGRESS = obj({"done": COUNT, "total": COUNT, "message": TEXT})

COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": obj(
        {
            "error": {"type": "string", "description": "what went wrong, for a human"},
            "errors": {"type": "array", "items": ref("FieldError"), "description": "on 422: every bad field"},
        },
        required=("error",),
    ),
    "FieldError": obj(
        {
            "field": {"type": "string", "description": "e.g. `type`, `params.seconds`, `ids[3]`, `limit`"},
            "message": {"type": "string"},
        }
    ),
    # Requests
    "StartRun": obj(
        {
            "type": {"type": "string", "minLength": 1, "maxLength": 200, "description": "a job type name"},
            "params": nullable("object", description="the job type's parameters (see `params_schema`)"),
            "at": nullable("string", format="date-time", description="start later; ISO 8601 with a UTC offset"),
            "idempotency_key": nullable(
                "string",
                minLength=1,
                maxLength=MAX_KEY_LENGTH,
                description="a second request with the same key creates nothing and answers the first run",
            ),
            "notify": {**ADDRESS_LIST, "type": ["array", "null"], "description": "mail these when the run ends"},
        },
        required=("type",),
    ),
    "Empty": obj({}, description="no fields; the body may also be left out"),
    "Notify": obj({"addresses": {**ADDRESS_LIST, "minItems": 1}}),
    "Bulk": obj(
        {
            "action": {"type": "string", "enum": list(BULK_ACTIONS)},
            "ids": {
                "type": "array",
                "items": {"type": "string", "maxLength": 64},
                "minItems": 1,
                "maxItems": MAX_BULK_IDS,
            },
        }
    ),
    "TriggerInput": obj(
        {
            "kind": {"type": "string", "enum": list(KINDS)},
            "value": {
                "type": ["string", "integer"],
                "description": 'cron "0 3 * * *"; interval 3600 (seconds); at "2026-12-01T03:00:00+00:00"; '
                'weekly "mon,fri@03:00"; after "other.type"',
            },
            "timezone": nullable("string", maxLength=100, description="IANA name for cron and weekly; default UTC"),
        },
        required=("kind", "value"),
    ),
    "PutSchedule": obj(
        {
            "trigger": ref("TriggerInput"),
            "params": nullable("object", description="parameters of the runs the schedule starts"),
            "report_to": {
                **ADDRESS_LIST,
                "type": ["array", "null"],
                "description": "mailed when any run of the type ends; replaces the current list",
            },
        },
        required=("trigger",),
    ),
    "RunNow": obj({"params": nullable("object", description="override the schedule's parameters")}, required=()),
    # Responses
    "RunCreated": obj(
        {
            "id": {"type": "string"},
            "status": STATUS,
            "url": {"type": "string", "description": "this run in the API"},
            "page_url": {"type": "string", "description": "this run in the dashboard"},
        }
    ),
    "RunSummary": obj(
        {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "status": STATUS,
            "queue": {"type": "string"},
            "domain": TEXT,
            "triggered_by": TEXT,
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": INSTANT,
            "finished_at": INSTANT,
            "running_time_s": nullable("number"),
            "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "error_count": {"type": "integer"},
            "progress": PROGRESS,
            "next_attempt_at": INSTANT,
            "error": TEXT,
            "cancel_requested": {"type": "boolean"},
        }
    ),
    "RunPage": obj(
        {
            "runs": {"type": "array", "items": ref("RunSummary")},
            "next_cursor": nullable("string", description="pass as `cursor` for the next page; null on the last"),
        }
    ),
    "Attempt": obj(
        {
            "series": {"type": "integer"},
            "number": {"type": "integer"},
            "worker": {"type": "string"},
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": INSTANT,
            "outcome": TEXT,
            "error_class": TEXT,
            "error_message": TEXT,
            "traceback": TEXT,
        }
    ),
    "RunDetail": obj(
        {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "status": STATUS,
            "queue": {"type": "string"},
            "domain": TEXT,
            "params": {"type": "object", "description": "secret parameters are masked"},
            "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "series": {"type": "integer", "description": "attempt series; a manual retry starts a new one"},
            "created_at": {"type": "string", "format": "date-time"},
            "scheduled_for": INSTANT,
            "started_at": INSTANT,
            "finished_at": INSTANT,
            "next_attempt_at": INSTANT,
            "triggered_by": TEXT,
            "retried_by": TEXT,
            "retried_at": INSTANT,
            "error": TEXT,
            "result": ANY_JSON,
            "progress": PROGRESS,
            "items": obj({status: {"type": "integer"} for status in ITEM_STATUSES}),
            "error_count": {"type": "integer"},
            "attempt_history": {"type": "array", "items": ref("Attempt")},
            "logs": {
                "type": "array",
                "items": obj(
                    {
                        "id": {
                            "type": "integer",
                            "description": "increases with each line of the run; a client tailing the log "
                            "keeps the last one it has shown",
                        },
                        "at": {"type": "string", "format": "date-time"},
                        "level": {"type": "string", "description": "info, warning or error"},
                        "message": {"type": "string"},
                    }
                ),
            },
        }
    ),
    "Items": obj(
        {
            "run_id": {"type": "string"},
            "items": {
                "type": "array",
                "items": obj(
                    {
                        "key": {"type": "string"},
                        "status": {"type": "string", "enum": list(ITEM_STATUSES)},
                        "message": TEXT,
                        "at": {"type": "string", "format": "date-time"},
                    }
                ),
            },
            "truncated": {"type": "boolean", "description": "more items match than `limit`"},
        }
    ),
    "RunState": obj({"id": {"type": "string"}, "status": STATUS}),
    "NotifyList": obj({"id": {"type": "string"}, "notify": {"type": "array", "items": {"type": "string"}}}),
    "BulkOutcome": obj(
        {
            "action": {"type": "string", "enum": list(BULK_ACTIONS)},
            "results": {
                "type": "array",
                "items": obj(
                    {
                        "id": {"type": "string"},
                        "ok": {"type": "boolean"},
                        "status": {**STATUS, "description": "retry and cancel: the run's status now"},
                        "new_id": {"type": "string", "description": "run_again: the new run"},
                        "reason": {**SKIP_REASON, "description": "why this run was left alone"},
                        "error": {"type": "string", "description": "why this run was left alone, for a human"},
                    },
                    required=("id", "ok"),
                ),
            },
            "summary": obj(
                {
                    "acted": {"type": "integer", "description": "runs the action was applied to"},
                    "skipped": {"type": "integer", "description": "runs left alone"},
                    "skipped_by_reason": {
                        "type": "object",
                        "propertyNames": SKIP_REASON,
                        "additionalProperties": {"type": "integer", "minimum": 1},
                        "description": "runs left alone, counted by `reason`",
                    },
                    "message": {
                        "type": "string",
                        "description": "in words: `retried 12, skipped 38: 30 cancelled, 8 waiting on a dependency`",
                    },
                }
            ),
        }
    ),
    "Trigger": obj(
        {
            "kind": {"type": "string", "enum": list(KINDS)},
            "value": {"type": "string", "description": "what `TriggerInput.value` takes back"},
            "timezone": {"type": "string"},
            "description": {"type": "string"},
        }
    ),
    "JobType": obj(
        {
            "name": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "queue": {"type": "string"},
            "domain": TEXT,
            "max_attempts": {"type": "integer"},
            "timeout_s": {"type": "integer"},
            "exclusive": {"type": "boolean"},
            "default_schedule": {"oneOf": [ref("Trigger"), {"type": "null"}]},
            "params_schema": {"type": "object", "description": "JSON schema of `params`"},
            "may_start": {"type": "boolean", "description": "whether the caller may start it"},
            "may_configure": {"type": "boolean", "description": "whether the caller may change its schedule"},
        }
    ),
    "JobTypeList": obj({"types": {"type": "array", "items": ref("JobType")}}),
    "Schedule": obj(
        {
            "type": {"type": "string"},
            "mode": {"type": "string", "enum": list(SCHEDULE_MODES)},
            "trigger": ref("Trigger"),
            "params": {"type": "object", "description": "secret parameters are masked"},
            "next_run_at": INSTANT,
            "last_run_id": TEXT,
            "last_fired_at": INSTANT,
            "misfires": {"type": "integer"},
            "last_misfire_at": INSTANT,
            "changed_at": {"type": "string", "format": "date-time"},
            "changed_by": {"type": "string"},
            "report_to": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "ScheduleList": obj({"schedules": {"type": "array", "items": ref("Schedule")}}),
    "Deleted": obj({"type": {"type": "string"}, "deleted": {"type": "boolean", "const": True}}),
    "OpenApiDocument": {"type": "object", "description": "this document"},
}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follows a `$ref` into COMPONENTS."""
    while "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def project(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Exactly the properties the schema lists (a missing one is a bug: KeyError, caught by the tests)."""
    return {key: data[key] for key in COMPONENTS[name]["properties"]}
