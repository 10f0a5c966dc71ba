"""rq-dashboard at /rq in a real browser: job fields holding script run nothing, and show as text.

An operator who may start a type controls text that ends up in RQ's data (a parameter quoted in the
error message); jobs planted in Redis control every field. An admin who opens /rq must not run any of it:
the payloads below set a flag on `window` and try to create an admin account through the dashboard's own
form, with the CSRF token rq-dashboard's cookie carries."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rq import Queue
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from core.app import Jobyard
from dashboard.auth.users import list_users
from jobs.enqueue import enqueue
from jobs.queries import run_detail
from jobs.status import RunStatus
from tests.conftest import WebProcess, wait_for
from tests.webclient import browser_login

pytestmark = pytest.mark.slow

MAKE_ADMIN = (
    "var t=(document.cookie.match(/_csrf_token=([^;]+)/)||[])[1];"
    "fetch('/admin/users/add',{method:'POST',headers:{'Content-Type':'application/x-www-form-urlencoded'},"
    "body:'csrf_token='+t+'&username=mallory&role=admin&password=Mallory-pw-123456'});"
)
PAYLOADS = (
    f'<img src=x onerror="window.__xss=(window.__xss||0)+1;{MAKE_ADMIN}">',
    "<script>window.__xss=(window.__xss||0)+1</script>",
    "<svg onload=window.__xss=(window.__xss||0)+1>",
    "\"'><iframe srcdoc='<script>parent.__xss=1</script>'>",
)
PAYLOAD = " ".join(PAYLOADS)


@pytest.fixture
def admin_page(app: Jobyard, users: Any, chromium: Any, start_web: Callable[[], WebProcess]) -> Iterator[Any]:
    users.add("root", "admin")
    site = start_web().url
    context = chromium.new_context(base_url=site)
    tab = context.new_page()
    browser_login(tab, "root")
    yield tab
    context.close()


def _plant_failed_job(app: Jobyard) -> str:
    """A job written straight into Redis with the payload in every field rq-dashboard shows."""
    queue = Queue("default", connection=app.redis, serializer=JSONSerializer)
    job = Job.create("workers.entrypoint.execute_run", args=["planted"], id="planted-xss", connection=app.redis,
                     serializer=JSONSerializer, origin="default", description=PAYLOAD,
                     meta={"note": PAYLOAD})  # fmt: skip
    job.save()
    app.redis.zadd(queue.failed_job_registry.key, {job.id: 9_999_999_999})
    app.redis.sadd(Queue.redis_queues_keys, queue.key)
    exc = base64.b64encode(zlib.compress(PAYLOAD.encode()))
    app.redis.xadd(Result.get_key(job.id), {"type": Result.Type.FAILED.value, "exc_string": exc})
    app.redis.hset(job.key, "result", JSONSerializer.dumps(PAYLOAD))
    return job.id


def _assert_nothing_ran(app: Jobyard, page: Any) -> None:
    assert page.evaluate("window.__xss") is None
    assert [u.username for u in list_users(app.engine)] == ["root"], "a payload created an account"


def test_job_fields_with_script_run_nothing_in_rq_dashboard(
    app: Jobyard, admin_page: Any, start_workers: Callable[..., Any]
) -> None:
    run_id = enqueue("test.rejecting", {"path": PAYLOAD}, app=app)
    start_workers(1)
    wait_for(lambda: (d := run_detail(app.engine, run_id)) and d["status"] == RunStatus.FAILED, what="the run fails")
    planted = _plant_failed_job(app)
    page = admin_page
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security" in message.text else 0)

    page.goto("/rq/0/view/jobs/default/failed/8/asc/1")
    rows = page.locator("tr[data-role=job]")
    rows.first.wait_for()
    assert rows.count() == 2
    listed = page.locator("table#jobs").inner_text()
    assert PAYLOADS[1] in listed and f"path: {PAYLOAD} does not exist" in listed  # the text, shown as text
    _assert_nothing_ran(app, page)

    for job_id in (run_id, planted):
        page.goto(f"/rq/0/view/job/{job_id}")
        page.locator("#job-data pre.exc_info").wait_for()
        shown = page.locator("#job-data").inner_text()
        assert PAYLOADS[1] in shown
        _assert_nothing_ran(app, page)
        page.goto(f"/rq/0/data/job/{job_id}.json")
        _assert_nothing_ran(app, page)

    page.goto("/rq/0/view/workers")
    page.goto("/rq/")
    page.locator("#queues tr td").first.wait_for()
    _assert_nothing_ran(app, page)
    # rq-dashboard's own script ran (the lists above filled in) and nothing it does needed a CSP exception.
    assert violations == []
