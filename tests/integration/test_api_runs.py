"""The runs API as an admin service would use it: start, list, read, act, and the 4xx for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from core.app import Jobyard
from core.db import utcnow
from jobs.models import RunItem
from jobs.models import runs_table as runs
from jobs.run_search import encode_cursor
from tests.helpers import mixed_runs, run_rows

API = "/api/v1"


pytestmark = pytest.mark.both_databases


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_count(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs)).scalar_one())


def start(client: Any, token: str, **body: Any) -> Any:
    return client.post(f"{API}/runs", json=body, headers=bearer(token))


def fields_of(response: Any) -> set[str]:
    assert response.status_code == 422, response.get_data(as_text=True)
    return {e["field"] for e in response.json["errors"]}


def test_start_a_run_and_read_it_back(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    response = start(client, token, type="test.secretive", params={"token": "s3cret"}, notify=["ops@example.org"])
    assert response.status_code == 201
    run_id = response.json["id"]
    assert response.json["status"] == "pending"
    assert response.headers["Location"] == response.json["url"] == f"{API}/runs/{run_id}"
    assert response.json["page_url"].endswith(f"/runs/{run_id}")
    detail = client.get(response.headers["Location"], headers=bearer(token))
    assert detail.status_code == 200
    assert detail.json["type"] == "test.secretive"
    assert detail.json["params"]["token"] != "s3cret"  # masked
    assert detail.json["triggered_by"] == "token:svc"


def test_a_run_can_start_later(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    later = (utcnow() + timedelta(hours=2)).astimezone().isoformat()
    response = start(client, token, type="demo.noop", at=later)
    assert response.status_code == 201 and response.json["status"] == "scheduled"


def test_a_repeated_idempotency_key_answers_the_same_run(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    first = start(client, token, type="demo.noop", idempotency_key="order-42")
    again = start(client, token, type="demo.noop", idempotency_key="order-42")
    assert first.status_code == again.status_code == 201
    assert first.json["id"] == again.json["id"]
    assert run_count(app) == 1


def test_an_idempotency_key_of_a_run_the_caller_cannot_see_is_a_conflict(app: Jobyard, web: Any, users: Any) -> None:
    users.add("olga", "operator", grants=["demo.noop"])
    admin, olga = users.token("svc", "admin"), users.token("olga-svc", "operator", user="olga")
    client = web.test_client()
    assert start(client, admin, type="demo.noop", idempotency_key="shared").status_code == 201
    response = start(client, olga, type="demo.noop", idempotency_key="shared")
    assert response.status_code == 409 and "idempotency_key" in response.json["error"]


def test_bad_parameters_are_all_named_and_nothing_is_stored(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    before = run_count(app)
    response = start(client, token, type="test.slow", params={"seconds": "soon", "colour": "red"})
    assert fields_of(response) == {"params.seconds", "params.colour"}
    assert response.json["error"] == "invalid request"
    assert run_count(app) == before


def test_an_unknown_type_is_a_422_naming_type(app: Jobyard, web: Any, users: Any) -> None:
    token = users.token("svc", "admin")
    response = start(web.test_client(), token, type="no.such_type")
    assert fields_of(response) == {"type"}
    assert run_count(app) == 0


def test_bad_fields_of_the_body_are_named(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    naive = datetime(2030, 1, 1).isoformat()
    response = start(client, token, type="demo.noop", at=naive, notify=["not an address"], priority=3)
    assert fields_of(response) == {"at", "notify", "priority"}
    assert start(client, token, type="demo.noop", notify=["nobody"]).json["errors"][0]["field"] == "notify"
    assert fields_of(start(client, token, params={})) == {"type"}
    assert fields_of(start(client, token, type="demo.noop", idempotency_key="x\x00y")) == {"idempotency_key"}
    # SQLite could not read such a run back: every list of runs would fail from then on.
    assert fields_of(start(client, token, type="demo.noop", at="0999-01-01T00:00:00Z")) == {"at"}
    assert fields_of(start(client, token, type="demo.noop", at="9999-12-31T23:00:00-05:00")) == {"at"}
    assert run_count(app) == 0


def test_malformed_or_non_object_bodies_are_400(app: Jobyard, web: Any, users: Any) -> None:
    headers = {**bearer(users.token("svc", "admin")), "Content-Type": "application/json"}
    client = web.test_client()
    for raw in ('{"type": "demo.noop"', "[1, 2]", '"demo.noop"', "NaN", "", b"\xff\xfe"):
        response = client.post(f"{API}/runs", data=raw, headers=headers)
        assert response.status_code == 400, raw
        assert response.is_json and response.json["error"]
    assert run_count(app) == 0


def test_runs_are_listed_newest_first_in_keyset_pages(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    started = [start(client, token, type="demo.noop").json["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/runs", query_string=query, headers=bearer(token))
        assert page.status_code == 200
        seen.extend(r["id"] for r in page.json["runs"])
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(started))


def test_runs_are_filtered(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    noop = start(client, token, type="demo.noop").json["id"]
    touch = start(client, token, type="test.touch", params={"path": "/dev/null"}).json["id"]
    client.post(f"{API}/runs/{touch}/cancel", headers=bearer(token))

    def ids(query: Any) -> list[str]:
        response = client.get(f"{API}/runs", query_string=query, headers=bearer(token))
        assert response.status_code == 200, response.json
        return [r["id"] for r in response.json["runs"]]

    assert ids({"type": "demo.noop"}) == [noop]
    assert ids([("type", "demo.noop"), ("type", "test.touch")]) == [touch, noop]
    assert ids({"status": "cancelled"}) == [touch]
    assert ids({"triggered_by": "token:svc", "q": "touch"}) == [touch]
    assert ids({"queue": "elsewhere"}) == []
    # Naive instants are UTC.
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert len(ids({"created_from": an_hour_ago, "created_to": in_an_hour})) == 2
    assert ids({"created_from": in_an_hour}) == []


def test_bad_query_parameters_are_422_naming_each(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()

    def bad(query: Any) -> set[str]:
        return fields_of(client.get(f"{API}/runs", query_string=query, headers=bearer(token)))

    assert bad({"limit": 0}) == {"limit"}
    assert bad({"limit": 501}) == {"limit"}
    assert bad({"limit": "ten"}) == {"limit"}
    assert bad({"status": "sleeping"}) == {"status"}
    assert bad({"cursor": "not-a-cursor"}) == {"cursor"}
    assert bad({"cursor": encode_cursor(datetime(2030, 1, 1), "abc")}) == {"cursor"}  # naive: not ours
    assert bad({"created_from": "yesterday"}) == {"created_from"}
    assert bad({"created_from": "2030-01-02T00:00:00Z", "created_to": "2030-01-01T00:00:00Z"}) == {"created_from"}
    assert bad({"stauts": "failed"}) == {"stauts"}
    assert bad([("queue", "a"), ("queue", "b")]) == {"queue"}
    assert bad({"limit": 0, "status": "sleeping", "nope": 1}) == {"limit", "status", "nope"}


def test_item_results_of_a_run(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    run_id = start(client, token, type="demo.noop").json["id"]
    now = utcnow()
    with app.engine.begin() as conn:
        conn.execute(
            insert(RunItem.__table__),
            [{"run_id": run_id, "key": f"item-{n}", "status": "failed" if n % 3 == 0 else "ok", "message": None,
              "at": now} for n in range(1, 8)],
        )  # fmt: skip
    failed = client.get(f"{API}/runs/{run_id}/items", query_string={"status": "failed"}, headers=bearer(token))
    assert failed.status_code == 200
    assert [i["key"] for i in failed.json["items"]] == ["item-3", "item-6"]
    assert failed.json["truncated"] is False
    first = client.get(f"{API}/runs/{run_id}/items", query_string={"limit": 3}, headers=bearer(token))
    assert len(first.json["items"]) == 3 and first.json["truncated"] is True
    assert client.get(f"{API}/runs/{run_id}", headers=bearer(token)).json["items"] == {
        "ok": 5,
        "failed": 2,
        "skipped": 0,
    }
    bad = client.get(f"{API}/runs/{run_id}/items", query_string={"status": "weird"}, headers=bearer(token))
    assert fields_of(bad) == {"status"}


def test_cancel_retry_and_run_again(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    run_id = start(client, token, type="demo.noop").json["id"]
    cancelled = client.post(f"{API}/runs/{run_id}/cancel", headers=bearer(token))
    assert cancelled.status_code == 200 and cancelled.json == {"id": run_id, "status": "cancelled"}
    assert client.post(f"{API}/runs/{run_id}/cancel", headers=bearer(token)).status_code == 409
    refused = client.post(f"{API}/runs/{run_id}/retry", json={}, headers=bearer(token))
    assert refused.status_code == 409 and "Run again starts a new run" in refused.json["error"]
    again = client.post(f"{API}/runs/{run_id}/run-again", headers=bearer(token))
    assert again.status_code == 201 and again.json["id"] != run_id
    assert again.headers["Location"] == f"{API}/runs/{again.json['id']}"
    assert run_count(app) == 2
    unknown_field = client.post(f"{API}/runs/{run_id}/cancel", json={"force": True}, headers=bearer(token))
    assert fields_of(unknown_field) == {"force"}
    assert client.get(f"{API}/runs/{run_id}", headers=bearer(token)).json["status"] == "cancelled"
    failed = start(client, token, type="demo.noop").json["id"]
    with app.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == failed).values(status="failed", finished_at=utcnow()))
    retried = client.post(f"{API}/runs/{failed}/retry", json={}, headers=bearer(token))
    assert retried.status_code == 202 and retried.json == {"id": failed, "status": "pending"}
    assert client.post(f"{API}/runs/{failed}/retry", headers=bearer(token)).status_code == 409


def test_notify_when_finished(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    run_id = start(client, token, type="demo.noop", notify=["a@example.org"]).json["id"]
    response = client.post(f"{API}/runs/{run_id}/notify", json={"addresses": ["b@example.org"]}, headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {"id": run_id, "notify": ["a@example.org", "b@example.org"]}
    bad = client.post(f"{API}/runs/{run_id}/notify", json={"addresses": ["nobody"]}, headers=bearer(token))
    assert fields_of(bad) == {"addresses"}
    blank = client.post(f"{API}/runs/{run_id}/notify", json={"addresses": ["  "]}, headers=bearer(token))
    assert fields_of(blank) == {"addresses"}
    assert fields_of(client.post(f"{API}/runs/{run_id}/notify", json={}, headers=bearer(token))) == {"addresses"}


def test_bulk_actions_report_each_run(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    first, second = (start(client, token, type="demo.noop").json["id"] for _ in range(2))
    with app.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == second).values(status="completed", finished_at=utcnow()))
    missing = "0" * 32
    response = client.post(
        f"{API}/runs/bulk", json={"action": "cancel", "ids": [first, second, missing, first]}, headers=bearer(token)
    )
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["id"] for r in results] == [first, second, missing]
    assert results[0] == {"id": first, "ok": True, "status": "cancelled"}
    assert results[1]["ok"] is False and results[1]["reason"] == "completed" and "completed" in results[1]["error"]
    assert results[2]["ok"] is False and results[2]["reason"] == "not_found" and "no run" in results[2]["error"]
    assert response.json["summary"] == {
        "acted": 1,
        "skipped": 2,
        "skipped_by_reason": {"completed": 1, "not_found": 1},
        "message": "cancelled 1, skipped 2: 1 completed, 1 not found",
    }
    again = client.post(f"{API}/runs/bulk", json={"action": "run_again", "ids": [first]}, headers=bearer(token))
    assert again.json["results"][0]["ok"] is True and len(again.json["results"][0]["new_id"]) == 32
    assert again.json["summary"]["message"] == "ran 1 again"
    retried = client.post(f"{API}/runs/bulk", json={"action": "retry", "ids": [first]}, headers=bearer(token))
    assert retried.json["results"] == [
        {"id": first, "ok": False, "reason": "cancelled", "error": retried.json["results"][0]["error"]}
    ]
    assert retried.json["summary"]["message"] == "retried 0, skipped 1: 1 cancelled"
    bad = client.post(f"{API}/runs/bulk", json={"action": "explode", "ids": []}, headers=bearer(token))
    assert fields_of(bad) == {"action", "ids"}


def test_bulk_retry_of_mixed_runs_retries_only_the_failed_ones(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    mixed = mixed_runs(app, by="token:svc")
    before = run_rows(app, mixed.all)
    ids = [r["id"] for r in client.get(f"{API}/runs", headers=bearer(token)).json["runs"]]
    response = client.post(f"{API}/runs/bulk", json={"action": "retry", "ids": ids}, headers=bearer(token))
    assert response.status_code == 200
    results = {r["id"]: r for r in response.json["results"]}
    assert {r for r, result in results.items() if result["ok"]} == set(mixed.failed)
    assert {results[r]["reason"] for r in mixed.cancelled} == {"cancelled"}
    assert {results[r]["reason"] for r in mixed.waiting} == {"waiting_on_dependency"}
    assert mixed.parent in results[mixed.waiting[0]]["error"]  # names the run it waits on
    assert response.json["summary"] == {
        "acted": 3,
        "skipped": 6,
        "skipped_by_reason": {"cancelled": 3, "waiting_on_dependency": 2, "pending": 1},
        "message": "retried 3, skipped 6: 3 cancelled, 2 waiting on a dependency, 1 pending",
    }
    after = run_rows(app, mixed.all)
    assert {r: after[r][:2] for r in mixed.failed} == dict.fromkeys(mixed.failed, ("pending", 2))
    assert {r: after[r] for r in mixed.all - set(mixed.failed)} == {r: before[r] for r in mixed.all - set(mixed.failed)}


def test_unknown_runs_and_routes_answer_json_404(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    for path in (
        f"{API}/runs/{'0' * 32}",
        f"{API}/runs/not-an-id",
        f"{API}/nothing/here",
        f"{API}/runs/{'0' * 32}/items",
    ):
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 404 and response.is_json, path
    wrong_method = client.delete(f"{API}/runs", headers=bearer(token))
    assert wrong_method.status_code == 405 and wrong_method.is_json
    assert client.get(f"{API}/runs/bulk", headers=bearer(token)).status_code == 405


def test_an_unexpected_error_answers_json_500(app: Jobyard, users: Any, monkeypatch: Any) -> None:
    from dashboard.api import job_types
    from dashboard.app import create_app

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(job_types, "type_out", broken)
    client = create_app(app, {"PROPAGATE_EXCEPTIONS": False}).test_client()
    response = client.get(f"{API}/types", headers=bearer(users.token("svc", "admin")))
    assert response.status_code == 500 and response.json == {"error": "internal error; the server log has the details"}
