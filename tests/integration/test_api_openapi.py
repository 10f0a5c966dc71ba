"""The OpenAPI document: valid 3.1, exactly the routes the app serves, and request schemas the server
enforces to the letter."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from core.app import Jobyard
from dashboard.api.routes import OPERATIONS, Operation
from dashboard.api.schemas import COMPONENTS
from dashboard.api.validation import unsupported_keywords
from jobs.enqueue import enqueue
from tests.helpers import run_with_history

API = "/api/v1"
IMPLICIT = {"HEAD", "OPTIONS"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def document(web: Any, users: Any) -> dict[str, Any]:
    response = web.test_client().get(f"{API}/openapi.json", headers=bearer(users.token("svc", "viewer")))
    assert response.status_code == 200
    found: dict[str, Any] = response.json
    return found


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": API}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token, `jy_...`",
    }


def test_the_document_lists_exactly_the_routes_of_the_app(web: Any, document: dict[str, Any]) -> None:
    served = set()
    for rule in web.url_map.iter_rules():
        if rule.rule.startswith(API + "/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len(API) :])
            served |= {(method, path) for method in rule.methods - IMPLICIT}
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented == served
    assert len(served) == len(OPERATIONS) == 27


def test_every_operation_documents_its_parameters_and_answers(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, described in item.items():
            responses = set(described["responses"])
            assert "401" in responses and "422" in responses, (method, path)
            assert any(code.startswith("2") for code in responses), (method, path)
            names = {p["name"] for p in described.get("parameters", ()) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (method, path)
            if method in ("post", "put", "delete"):
                assert "400" in responses, (method, path)
            if names:
                assert "404" in responses, (method, path)


def test_request_schemas_use_only_keywords_the_server_enforces() -> None:
    bodies = [op.body for op in OPERATIONS if op.body is not None]
    queries = [q.schema for op in OPERATIONS for q in op.query]
    assert bodies and queries
    for schema in bodies + queries:
        assert unsupported_keywords(schema) == set(), schema
    assert unsupported_keywords({"type": "string", "pattern": "x"}) == {"pattern"}
    assert unsupported_keywords({"type": "object", "properties": {"a": {"format": "email"}}}) == {"format: email"}


def _path(op: Operation, run_id: str) -> str:
    return API + op.path.format(run_id=run_id, type_name="test.nightly", identity_id="1", target_name="gws")


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.body is not None], ids=lambda op: op.operation_id)
def test_every_body_refuses_unknown_fields_and_malformed_json(
    app: Jobyard, web: Any, users: Any, op: Operation
) -> None:
    token = users.token("svc", "admin")
    run_id = enqueue("demo.noop", triggered_by="svc", app=app)
    client = web.test_client()
    headers = {**bearer(token), "Content-Type": "application/json"}
    unknown = client.open(_path(op, run_id), method=op.method, data='{"surprise": 1}', headers=headers)
    assert unknown.status_code == 422, unknown.json
    assert "surprise" in {e["field"] for e in unknown.json["errors"]}
    malformed = client.open(_path(op, run_id), method=op.method, data="{surprise", headers=headers)
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json["error"]
    listed = client.open(_path(op, run_id), method=op.method, data="[]", headers=headers)
    assert listed.status_code == 400 and "JSON object" in listed.json["error"]


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.operation_id)
def test_every_operation_refuses_unknown_query_parameters(app: Jobyard, web: Any, users: Any, op: Operation) -> None:
    token = users.token("svc", "admin")
    run_id = enqueue("demo.noop", triggered_by="svc", app=app)
    response = web.test_client().open(
        _path(op, run_id), method=op.method, query_string={"surprise": 1}, headers=bearer(token), json={}
    )
    assert response.status_code == 422
    assert (
        response.json["errors"] == [{"field": "surprise", "message": response.json["errors"][0]["message"]}]
        and "not a parameter" in response.json["errors"][0]["message"]
    )


def test_responses_project_exactly_the_documented_fields() -> None:
    from dashboard.api.schemas import project

    assert project("RunState", {"id": "x", "status": "pending", "extra": 1}) == {"id": "x", "status": "pending"}
    with pytest.raises(KeyError):
        project("RunState", {"id": "x"})
    assert set(COMPONENTS["RunState"]["required"]) == {"id", "status"}


def validator_of(document: dict[str, Any], component: str) -> Draft202012Validator:
    """A JSON Schema (2020-12, as OpenAPI 3.1 uses) validator of one component, its `$ref`s resolved in the
    served document itself."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:jobyard:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:jobyard:openapi#/components/schemas/{component}"}
    return Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_a_full_run_answers_exactly_its_schema(app: Jobyard, web: Any, users: Any, document: dict[str, Any]) -> None:
    run_id = run_with_history(app, by="token:ops")
    client, headers = web.test_client(), bearer(users.token("ops", "admin"))
    detail = client.get(f"{API}/runs/{run_id}", headers=headers).json
    # Every nested list is filled, so that an undeclared field in any of them shows.
    assert len(detail["attempt_history"]) == 3 and len(detail["logs"]) >= 2
    assert detail["items"] == {"ok": 13, "failed": 3, "skipped": 26}  # series 2 and 3 skip the 13 done
    run_detail = validator_of(document, "RunDetail")
    assert [error.message for error in run_detail.iter_errors(detail)] == []
    logs = detail["logs"]
    assert [line["id"] for line in logs] == sorted(line["id"] for line in logs)  # a cursor for a log tail
    assert not run_detail.is_valid({**detail, "logs": [{**logs[0], "surprise": 1}]})  # it would catch one
    listed = client.get(f"{API}/runs", headers=headers).json
    assert [error.message for error in validator_of(document, "RunPage").iter_errors(listed)] == []
    items = client.get(f"{API}/runs/{run_id}/items", headers=headers).json
    assert len(items["items"]) == 42
    assert [error.message for error in validator_of(document, "Items").iter_errors(items)] == []
