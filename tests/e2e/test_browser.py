"""The operator's path through the dashboard in a real browser (Debian's chromium, headless, driven by
Playwright) against real processes: `jobyard web` (gunicorn), `jobyard worker` and `jobyard scheduler`
over the test's database and Redis. Screenshots of the main pages go to the session's temporary directory,
or, to refresh the README's, to the folder JOBYARD_SCREENSHOTS_DIR names:

    JOBYARD_SCREENSHOTS_DIR=docs/screenshots pytest tests/e2e/test_browser.py
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from core.app import Jobyard
from dashboard import operations as ops
from dashboard.auth.roles import Principal, Role
from jobs.models import runs_table
from jobs.queries import run_detail
from jobs.run_search import RunFilter
from jobs.status import RunStatus
from scheduler import schedules
from tests.conftest import WebProcess, wait_for
from tests.webclient import browser_login

ADMIN = ops.Actor(Principal("root", Role.ADMIN))
# Status changes reach the page through its live polling; allow for retries with backoff.
LIVE_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test command leaves the working tree as it was: the README's screenshots change only on request."""
    chosen = os.environ.get("JOBYARD_SCREENSHOTS_DIR")
    return Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def site(app: Jobyard, users: Any, start_workers: Callable[..., Any], start_scheduler: Callable[[], Any],
         start_web: Callable[[], WebProcess]) -> str:  # fmt: skip
    users.add("root", "admin", email="root@example.org")
    start_workers(2)
    start_scheduler()
    return start_web().url


@pytest.fixture
def page(chromium: Any, site: str) -> Iterator[Any]:
    context = chromium.new_context(base_url=site, viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # the pages' confirm() questions: answer yes
    browser_login(tab, "root")
    yield tab
    context.close()


def _live_status(page: Any, status: str) -> None:
    page.locator(f"#live-status [data-status={status}]").wait_for(timeout=LIVE_TIMEOUT_MS)


def _run_id_of(page: Any) -> str:
    return str(page.locator("#run").get_attribute("data-run-id"))


def test_start_a_failing_job_and_watch_it_retry_to_completion(app: Jobyard, page: Any, screenshots: Path) -> None:
    page.goto("/")
    page.locator("tr[data-type='demo.fail'] button[name=start]").click()
    dialog = page.locator("dialog[data-type='demo.fail']")
    dialog.locator("input[name=times]").fill("2")
    dialog.locator("button[name=review]").click()
    dialog.locator("button[name=yes]").click()
    page.wait_for_url("**/runs/*")
    run_id = _run_id_of(page)
    _live_status(page, "retrying")
    _live_status(page, "completed")
    detail = run_detail(app.engine, run_id)
    assert detail is not None and detail["status"] == RunStatus.COMPLETED
    assert detail["triggered_by"] == "root"
    assert [a["outcome"] for a in detail["attempt_history"]] == ["failed", "failed", "completed"]
    assert page.locator("#attempts tr[data-attempt]").count() == 3
    page.screenshot(path=str(screenshots / "run-detail.png"), full_page=True)


def test_retry_a_failed_run(app: Jobyard, page: Any) -> None:
    run_id = ops.start(app, ADMIN, "demo.noop", {})
    wait_for(lambda: (d := run_detail(app.engine, run_id)) and d["status"] == RunStatus.COMPLETED, what="the run")
    with app.engine.begin() as conn:  # as if its last attempt had failed
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(status=RunStatus.FAILED, error="boom"))
    page.goto(f"/runs/{run_id}")
    page.locator("button[name=retry]").click()
    page.wait_for_url(f"**/runs/{run_id}")
    _live_status(page, "completed")
    detail = run_detail(app.engine, run_id)
    assert detail is not None and detail["series"] == 2 and detail["retried_by"] == "root"


def test_cancel_a_running_run(app: Jobyard, page: Any) -> None:
    run_id = ops.start(app, ADMIN, "demo.sleep", {"seconds": 120})
    wait_for(lambda: (d := run_detail(app.engine, run_id)) and d["status"] == RunStatus.RUNNING, what="it to run")
    page.goto(f"/runs/{run_id}")
    page.locator("button[name=cancel]").click()
    _live_status(page, "cancelled")
    detail = run_detail(app.engine, run_id)
    assert detail is not None and detail["status"] == RunStatus.CANCELLED


def test_edit_a_schedule(app: Jobyard, page: Any, screenshots: Path) -> None:
    page.goto("/schedules")
    page.locator("select[name=type]").select_option("demo.noop")
    page.locator("button[name=create]").click()
    page.select_option("select[name=trigger_kind]", "cron")
    page.fill("input[name=trigger_value]", "*/5 * * * *")
    page.locator("button[name=save]").click()
    page.locator("tr[data-schedule='demo.noop']").wait_for()
    row = schedules.get(app, "demo.noop")
    assert (row.trigger.kind, row.trigger.spec, row.changed_by) == ("cron", {"cron": "*/5 * * * *"}, "root")
    page.locator("#edit-demo\\.noop").click()
    page.select_option("select[name=trigger_kind]", "weekly")
    page.fill("input[name=trigger_value]", "mon,fri@03:00")
    page.locator("button[name=save]").click()
    page.locator("tr[data-schedule='demo.noop']").wait_for()
    assert schedules.get(app, "demo.noop").trigger.spec == {"days": ["mon", "fri"], "times": ["03:00"]}
    page.screenshot(path=str(screenshots / "schedules.png"), full_page=True)


def test_screenshots_of_the_main_pages(app: Jobyard, page: Any, screenshots: Path) -> None:
    started = [
        ops.start(app, ADMIN, *request)
        for request in (
            ("demo.progress", {"steps": 3, "step_seconds": 0.1}),
            ("demo.fail", {"times": 1}),
            ("demo.noop", {}),
            ("demo.sleep", {"seconds": 30}),  # shown running
        )
    ]
    wait_for(
        lambda: {r["status"] for r in ops.list_runs(app, ADMIN.principal, RunFilter()).runs} >= {"completed"},
        what="some runs to complete",
    )
    for path, name in (("/", "job-types"), ("/runs", "runs"), ("/audit", "audit"), ("/admin/users", "users")):
        page.goto(path)
        if path == "/":  # the demo catalogue, not the test suite's own types
            page.fill("#type-filter", "demo.")
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
        assert (screenshots / f"{name}.png").stat().st_size > 10_000
    # Its worker would otherwise finish the 30 s nap before it stops, as a stopping worker should.
    ops.cancel(app, ADMIN, started[-1])


def test_create_an_identity_with_its_credential_and_find_it_in_the_list(app: Jobyard, page: Any) -> None:
    page.goto("/identities")
    page.click("#new-identity")
    # The page's script may still be loading when the form shows: wait for its effect, up to a deadline.
    page.select_option("#i-identity_type", "human_interactive")
    page.wait_for_selector("#credential-box", state="hidden")  # provisioning sets a human's password
    page.select_option("#i-identity_type", "api_key")
    page.wait_for_selector("#credential-box", state="visible")
    page.fill("#i-user_name", "billing-key")
    page.fill("#i-credential", "key-material-never-shown")
    page.click("button[name=create]")
    page.wait_for_url(lambda url: "/identities/new" not in url)
    assert page.locator("h1 [data-status=provisioned]").is_visible()
    assert "key-material-never-shown" not in page.content()
    page.goto("/identities?status=provisioned")
    assert page.locator("tr[data-identity=billing-key]").is_visible()
