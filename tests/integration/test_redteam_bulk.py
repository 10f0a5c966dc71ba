"""Bulk actions under hostile selections: more ids than a page can show, repeats, runs outside the principal's
view mixed with runs that do not exist, and ids of every odd shape."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from core.app import Jobyard
from core.defaults import RUNS_PAGE_SIZE_MAX
from dashboard.auth.audit import entries
from jobs.models import runs_table
from tests.webclient import login, post

API = "/api/v1"
FLASH = re.compile(r'<p class="flash (\w+)" role="status">(.*?)</p>', re.S)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _runs(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs_table)).scalar_one())


def test_the_runs_page_acts_on_no_more_runs_than_it_can_show(app: Jobyard, web: Any, users: Any) -> None:
    # The API refuses more than 500 ids; the page's form took any number the request size allowed (~50,000
    # ids in 2 MB, a query or more each), which kept a server thread busy for as long as one operator wished.
    users.add("olga", "operator", grants=["demo.noop"])
    token = users.token("olga-svc", "operator", user="olga")
    run_id = web.test_client().post(f"{API}/runs", json={"type": "demo.noop"}, headers=_bearer(token)).json["id"]
    client = login(web, "olga")
    too_many = [run_id, *(f"{n:032x}" for n in range(RUNS_PAGE_SIZE_MAX))]
    assert post(client, "/runs/bulk", {"action": "run_again", "run_ids": too_many}).status_code == 302
    [(category, message)] = FLASH.findall(client.get("/runs").get_data(as_text=True))
    assert category == "error" and f"at most {RUNS_PAGE_SIZE_MAX} runs" in message
    assert _runs(app) == 1, "nothing was run again"
    assert not [e for e in entries(app.engine) if e.action == "run_again"]
    # A full page of them, repeats counted once, is acted on.
    repeated = [run_id] * 3 + too_many[1:RUNS_PAGE_SIZE_MAX]
    assert post(client, "/runs/bulk", {"action": "run_again", "run_ids": repeated}).status_code == 302
    [(category, message)] = FLASH.findall(client.get("/runs").get_data(as_text=True))
    assert message == f"Run again: ran 1 again, skipped {RUNS_PAGE_SIZE_MAX - 1}: {RUNS_PAGE_SIZE_MAX - 1} not found"
    assert _runs(app) == 2


def test_a_run_outside_the_view_reads_exactly_as_one_that_does_not_exist(app: Jobyard, web: Any, users: Any) -> None:
    for name in ("olga", "oscar"):
        users.add(name, "operator", grants=["demo.noop"])
    olga, oscar = users.token("olga-svc", "operator", user="olga"), users.token("oscar-svc", "operator", user="oscar")
    client = web.test_client()
    hers = client.post(f"{API}/runs", json={"type": "demo.noop"}, headers=_bearer(olga)).json["id"]
    missing = "f" * 32
    for action in ("retry", "cancel", "run_again"):
        answer = client.post(
            f"{API}/runs/bulk",
            json={"action": action, "ids": [hers, missing, hers[:8], "é", ""]},
            headers=_bearer(oscar),
        ).json
        results = {r["id"]: r for r in answer["results"]}
        for run_id in (hers, missing):
            assert results[run_id] == {"id": run_id, "ok": False, "reason": "not_found", "error": f"no run {run_id!r}"}
        assert answer["summary"]["skipped_by_reason"] == {"not_found": 5}
    assert client.get(f"{API}/runs/{hers}", headers=_bearer(olga)).json["status"] == "pending"
