"""Schemathesis against the API in-process (WSGI), one test per documented operation and database.

Each operation is fuzzed with data that fits its documented schemas and with data that does not, as an
admin, both with path parameters drawn at random (nearly always 404) and pinned to objects that exist,
so that bodies and query strings reach the views. Every answer must be a documented status with a
documented body and content type, never a 5xx; data outside the schema must be refused; and the bearer
token must be what lets a request through.

Not run: `positive_data_acceptance`, because whether well-formed data is accepted depends on what the
server holds (a job type name, a run id, a schedule), which a schema cannot say: `{"type": "x"}` fits
StartRun and is rightly a 422. The stateful checks (use_after_free, ensure_resource_availability,
object_level_authorization) need a stateful run, and the coverage-phase checks (missing_required_header,
unsupported_method) a coverage phase; neither is part of this per-operation fuzzing.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.app import Jobyard
from dashboard.api.routes import OPERATIONS
from jobs.catalog.identity import identities, targets
from jobs.catalog.identity.identities import NewIdentity
from jobs.enqueue import enqueue
from scheduler import triggers
from scheduler.schedules import set_schedule
from tests.helpers import run_with_history

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
# Deeper local runs: JOBYARD_API_FUZZ_EXAMPLES=300 (still derandomized, so a failure reproduces).
MAX_EXAMPLES = int(os.environ.get("JOBYARD_API_FUZZ_EXAMPLES", "25"))
LABELS = [f"{op.method} {op.path}" for op in OPERATIONS]


pytestmark = pytest.mark.both_databases


def _fuzz(strategy: Any) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


def _naming_a_real_type(case: schemathesis.Case) -> schemathesis.Case:
    """Fits the schema still, but names a declared type without parameters, so that the rest of the
    generated body (odd `at`, `idempotency_key`, `notify`) reaches the database."""
    if isinstance(case.body, dict):
        case.body = {**case.body, "type": "demo.noop"}
    return case


def _outside_the_schema_on_the_wire(case: schemathesis.Case) -> bool:
    """A text/csv body is any text, and a "negative" one (an array, a number) reaches the server as text too,
    where it is a valid file with a strange header that the import run reports: no such body is outside the
    schema, so it proves nothing about refusing bad data. The multipart form and query strings stay fuzzed."""
    return case.media_type != "text/csv"


# Extra positive variants whose generated cases are adjusted to name objects that exist.
REALISTIC = {"POST /runs": _naming_a_real_type}


@pytest.mark.parametrize("label", LABELS)
def test_operation_answers_as_documented(
    app: Jobyard, web: Any, users: Any, bulk_import_type: None, label: str
) -> None:
    token = users.token("fuzz", "admin")
    # Given as the schema's bearerAuth credential, so that schemathesis knows which requests carry it.
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"bearerAuth": {"bearer": token}}}})
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", web, config=config, headers={"Authorization": f"Bearer {token}"}
    )
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    set_schedule(app, "test.nightly", triggers.interval(3600), by="fuzz")
    targets.save(app.engine, "gws", role="domain", base_url="https://gws.example.org/v2", token="fuzz-token", by="t")
    created = identities.create(app, NewIdentity("key-1", "api_key", credential="k"), by="fuzz")
    existing = {"type_name": "test.nightly", "identity_id": str(created.identity_id), "target_name": "gws"}
    if path.startswith("/runs"):
        # A run whose answers fill every nested list (log lines, item counts, several attempts), so that a
        # field the schema does not declare in them shows; and a second run, so that lists hold more than one.
        existing["run_id"] = run_with_history(app, by="fuzz")
        enqueue("test.touch", {"path": "/dev/null"}, triggered_by="fuzz", app=app)
    pinned = {name: existing[name] for name in existing if "{" + name + "}" in path}
    variants: list[dict[str, Any] | None] = [None, pinned] if pinned else [None]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for path_parameters in variants:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            if mode is GenerationMode.NEGATIVE:
                strategy = strategy.filter(_outside_the_schema_on_the_wire)
            _fuzz(strategy)
    if label in REALISTIC:
        _fuzz(operation.as_strategy(generation_mode=GenerationMode.POSITIVE).map(REALISTIC[label]))
