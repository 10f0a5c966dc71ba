"""Archive mode: the Live | Archive toggle, the list of imported archived runs and one archived run, read-only
and scoped by role as live runs are."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from core.app import Jobyard
from core.crypto import MASK
from core.db import utcnow
from jobs.archive_models import archived_runs_table as archived
from jobs.catalog import archive, archive_import
from jobs.context import JobContext
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.models import attempts_table, run_logs_table, runs_table
from jobs.queries import run_items
from tests.webclient import login, post

NOW = datetime(2025, 3, 1, 14, 0, tzinfo=UTC)
ROW = re.compile(r'<tr data-run-id="([0-9a-f]{32})"')


def _run(app: Jobyard, type_name: str, by: str, status: str, minutes: int, **params: Any) -> str:
    [run_id] = enqueue_many([EnqueueRequest(type_name, params, triggered_by=by)], app=app)
    created = NOW + timedelta(minutes=minutes)
    with app.engine.begin() as conn:
        conn.execute(
            update(runs_table)
            .where(runs_table.c.id == run_id)
            .values(status=status, created_at=created, started_at=created, finished_at=created + timedelta(seconds=75))
        )
    return run_id


def _history(app: Jobyard, run_id: str) -> None:
    with app.engine.begin() as conn:
        for number in (1, 2):
            conn.execute(
                insert(attempts_table).values(
                    run_id=run_id, series=1, number=number, worker="host.1", started_at=NOW, finished_at=NOW,
                    outcome="failed", error_class="DemoFailure", error_message=f"planned failure {number} of 3",
                    traceback=f"Traceback (most recent call last):\n  line {number}\nDemoFailure",
                )
            )  # fmt: skip
        conn.execute(insert(run_logs_table).values(run_id=run_id, at=NOW, level="warning", message="it went wrong"))
        for key, status in (("a", "ok"), ("b", "failed"), ("c", "skipped")):
            conn.execute(insert(run_items).values(run_id=run_id, key=key, status=status, message=f"{key}!", at=NOW))


def _job(app: Jobyard) -> JobContext:
    [run_id] = enqueue_many([EnqueueRequest("test.follower", {})], app=app)
    return JobContext(run_id=run_id, type="archive.export", attempt=1, params={}, engine=app.engine, app=app)


def archived_runs(app: Jobyard, tmp_path: Path) -> dict[str, str]:
    """Runs of alice, bob and the sales domain, exported and imported for real."""
    runs = {
        "alice": _run(app, "demo.fail", "alice", "failed", 0, times=3),
        "bob": _run(app, "test.secretive", "bob", "completed", 1, token="s3cret-value"),
        "sales": _run(app, "test.sales_sync", "carol", "completed", 2),
    }
    _history(app, runs["alice"])
    target = tmp_path / "2025.jyarchive"
    types = ["demo.fail", "test.secretive", "test.sales_sync"]
    assert archive.export_archive(_job(app), types, 30, str(target), [])["removed"] == 3
    assert archive_import.import_archive(_job(app), str(target))["imported"] == 3
    return runs


def _page(client: Any, path: str) -> tuple[int, str]:
    response = client.get(path)
    return response.status_code, html.unescape(response.get_data(as_text=True))


def test_an_admin_sees_every_archived_run_and_its_whole_record_read_only(
    app: Jobyard, web: Any, users: Any, tmp_path: Path
) -> None:
    users.add("root", "admin")
    runs = archived_runs(app, tmp_path)
    client = login(web, "root")

    status, page = _page(client, "/archive")
    assert status == 200 and ROW.findall(page) == [runs["sales"], runs["bob"], runs["alice"]]  # newest first
    assert str(tmp_path / "2025.jyarchive") in page and "2025-03-01 14:00:00" in page and "2025-03-01 14:01:15" in page
    assert '<a href="/archive" aria-current="page">Archive</a>' in page and '<a href="/runs" >Live</a>' in page

    status, detail = _page(client, f"/archive/{runs['alice']}")
    assert status == 200 and 'data-status="failed"' in detail
    assert detail.count("<details><summary>Traceback</summary>") == 2 and "planned failure 2 of 3" in detail
    assert "it went wrong" in detail and "1 ok" in detail and "1 failed" in detail and "1 skipped" in detail
    assert 'data-param="times">3<' in detail and str(tmp_path / "2025.jyarchive") in detail
    assert detail.count('method="post"') == 1  # only the logout form: nothing can be done to an archived run

    status, secret = _page(client, f"/archive/{runs['bob']}")
    assert status == 200 and f'data-param="token">{MASK}<' in secret and "s3cret" not in secret
    assert client.get(f"/runs/{runs['bob']}").status_code == 404  # gone from the live record
    assert post(client, f"/archive/{runs['bob']}").status_code == 405


def test_the_runs_page_has_the_toggle_to_the_archive(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    status, page = _page(login(web, "root"), "/runs")
    assert status == 200 and 'id="archive-toggle"' in page
    assert '<a href="/runs" aria-current="page">Live</a>' in page and '<a href="/archive" >Archive</a>' in page


def test_each_role_sees_the_archived_runs_it_would_see_live(app: Jobyard, web: Any, users: Any, tmp_path: Path) -> None:
    runs = archived_runs(app, tmp_path)
    users.add("alice", "operator", grants=["demo.fail"])
    users.add("sam", "domain_admin", domain="sales")
    users.add("vic", "viewer")
    users.add("hal", "viewer", domain="hr")
    expected = {
        "alice": [runs["alice"]],
        "sam": [runs["sales"]],
        "vic": [runs["sales"], runs["bob"], runs["alice"]],
        "hal": [],
    }
    for name, visible in expected.items():
        client = login(web, name)
        status, page = _page(client, "/archive")
        assert status == 200 and ROW.findall(page) == visible, name
        for run_id in runs.values():
            wanted = 200 if run_id in visible else 404
            assert client.get(f"/archive/{run_id}").status_code == wanted, (name, run_id)
    status, page = _page(login(web, "alice"), "/archive")
    assert "test.secretive" not in page  # the type filter offers only types of visible runs


def test_filters_and_refusals(app: Jobyard, web: Any, users: Any, tmp_path: Path) -> None:
    users.add("root", "admin")
    runs = archived_runs(app, tmp_path)
    client = login(web, "root")

    assert ROW.findall(_page(client, "/archive?type=test.secretive")[1]) == [runs["bob"]]
    assert ROW.findall(_page(client, "/archive?status=failed")[1]) == [runs["alice"]]
    assert ROW.findall(_page(client, "/archive?status=completed&type=demo.fail")[1]) == []
    status, page = _page(client, "/archive?status=running")
    assert status == 400 and "Bad filter status: running is not one of" in page and ROW.findall(page) == []
    status, page = _page(client, "/archive?cursor=nonsense")
    assert status == 400 and "cursor: not a cursor this server handed out" in page
    assert client.get("/archive/" + "0" * 32).status_code == 404


def test_pages_are_cut_on_created_at_and_id(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    now = utcnow()
    rows = [
        {
            "id": f"{n:032x}", "type": "demo.noop", "status": "completed", "domain": None, "triggered_by": "root",
            "created_at": NOW + timedelta(minutes=n // 2), "finished_at": None, "archive_file": "/a.jyarchive",
            "record": {"run": {"id": f"{n:032x}"}}, "imported_at": now, "imported_by_run": None,
        }
        for n in range(55)
    ]  # fmt: skip
    with app.engine.begin() as conn:
        conn.execute(insert(archived), rows)
    client = login(web, "root")

    status, first = _page(client, "/archive?type=demo.noop")
    older = re.search(r'href="([^"]+)" id="older"', first)
    assert status == 200 and older is not None and 'id="newest"' not in first
    status, second = _page(client, older.group(1))
    assert status == 200 and 'id="older"' not in second and 'id="newest"' in second
    newest_first = sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    assert ROW.findall(first) + ROW.findall(second) == [r["id"] for r in newest_first]
