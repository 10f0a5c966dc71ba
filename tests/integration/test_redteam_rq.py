"""/rq under odd input: every route answers, none with a 500.

A page number, a page size or a registry name is a path segment anyone can type; a queue or job hash in
Redis may be anything someone with write access to Redis planted; an action may be asked of a job in any
state. rq-dashboard trusted all of it (a page size of 0 divided by zero, an unknown registry name met an
unbound variable, a page past Redis's integer range or a key of the wrong type was Redis's error, requeueing
a job that had not failed was RQ's): Jobyard's fence answers 404 for a page that cannot exist, 409 for an
action the job's state does not allow, and 422 for data in Redis that is not RQ's shape."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.app import Jobyard
from dashboard.rq_guest.views import shown_instance
from jobs.enqueue import enqueue
from tests.webclient import login

REGISTRIES = ("queued", "failed", "started", "finished", "deferred", "scheduled", "canceled")
HUGE = "9" * 23  # past Redis's 64-bit integers


@pytest.fixture
def admin(web: Flask, users: Any) -> FlaskClient:
    users.add("root", "admin")
    client = login(web, "root")
    assert client.get("/rq/").status_code == 200  # sets the CSRF cookie rq-dashboard's JavaScript sends
    return client


def _csrf(client: FlaskClient) -> dict[str, str]:
    cookie = client.get_cookie("_csrf_token", path="/rq")
    assert cookie is not None
    return {"X-CSRFToken": cookie.value}


@pytest.mark.parametrize(
    "segments",
    [
        "nosuch/8/asc/1",  # no such registry
        "%3Cscript%3E/8/asc/1",
        "queued/0/asc/1",  # a page of no jobs divides by zero
        "failed/0/dsc/1",
        "queued/-1/asc/1",
        f"started/{HUGE}/asc/1",
        f"queued/8/asc/{HUGE}",
        f"failed/8/dsc/{HUGE}",
        "queued/8/asc/0",  # page 0 and below start before the first job
        "finished/8/dsc/-3",
        "queued/8/sideways/1",  # an order that is neither
        "queued/eight/asc/1",
    ],
)
def test_a_jobs_page_that_cannot_exist_is_not_found(app: Jobyard, admin: FlaskClient, segments: str) -> None:
    enqueue("test.follower", app=app)
    assert app.flush()
    data = admin.get(f"/rq/0/data/jobs/default/{segments}.json")
    assert data.status_code == 404, (segments, data.status_code)
    view = admin.get(f"/rq/0/view/jobs/default/{segments}")
    assert view.status_code == 404, (segments, view.status_code)


def test_every_real_jobs_page_still_answers(app: Jobyard, admin: FlaskClient) -> None:
    enqueue("test.follower", app=app)
    assert app.flush()
    for registry in REGISTRIES:
        for order in ("asc", "dsc"):
            for per_page, page in (("1", "1"), ("8", "1"), ("200", "1"), ("8", "1000")):
                route = f"/rq/0/data/jobs/default/{registry}/{per_page}/{order}/{page}.json"
                response = admin.get(route)
                assert response.status_code == 200, (route, response.status_code)
                assert response.json is not None and isinstance(response.json["jobs"], list)
        assert admin.get(f"/rq/0/view/jobs/default/{registry}/8/asc/1").status_code == 200
    page = admin.get("/rq/0/view/jobs")
    assert page.status_code == 200
    assert f"[0] {shown_instance(app.redis_url)}</option>" in page.get_data(as_text=True)
    listed = admin.get("/rq/0/data/jobs/default/queued/8/asc/1.json").json
    assert listed is not None and len(listed["jobs"]) == 1


def test_emptying_a_registry_that_does_not_exist_is_not_found(admin: FlaskClient) -> None:
    assert admin.post("/rq/queue/default/nosuch/empty", headers=_csrf(admin)).status_code == 404


def test_compacting_a_queue_that_holds_nothing_is_done(app: Jobyard, admin: FlaskClient) -> None:
    for name in ("nosuch", "a:b", "é"):
        response = admin.post(f"/rq/queue/{name}/compact", headers=_csrf(admin))
        assert response.status_code == 200, (name, response.status_code)
        assert response.json == {"status": "OK"}
    run_id = enqueue("test.follower", app=app)
    assert app.flush()
    assert admin.post("/rq/queue/default/compact", headers=_csrf(admin)).json == {"status": "OK"}
    assert app.redis.lrange("rq:queue:default", 0, -1) == [run_id.encode()]


def test_requeueing_a_job_that_has_not_failed_is_a_conflict(app: Jobyard, admin: FlaskClient) -> None:
    run_id = enqueue("test.follower", app=app)
    assert app.flush()
    for job_id in (run_id, f"{run_id}:x"):
        response = admin.post(f"/rq/job/{job_id}/requeue", headers=_csrf(admin))
        assert response.status_code == 409, (job_id, response.status_code)
        assert response.json is not None and response.json["status"] == "ERROR"
    assert app.redis.lrange("rq:queue:default", 0, -1) == [run_id.encode()]


def test_a_planted_key_of_the_wrong_type_leaves_every_page_answering(app: Jobyard, admin: FlaskClient) -> None:
    enqueue("test.follower", app=app)
    assert app.flush()
    # A queue listed in RQ's set of queues whose key is no list, and a failed registry that is no sorted set.
    app.redis.set("rq:queue:planted", "not a list")
    app.redis.sadd("rq:queues", "rq:queue:planted")
    app.redis.set("rq:failed:default", "not a sorted set")
    routes = [
        "/rq/", "/rq/0/view/workers", "/rq/0/data/queues.json", "/rq/0/view/jobs",
        "/rq/0/view/jobs/planted/queued/8/asc/1", "/rq/0/data/jobs/planted/queued/8/asc/1.json",
        "/rq/0/data/jobs/default/failed/8/asc/1.json", "/rq/0/data/jobs/default/queued/8/asc/1.json",
    ]  # fmt: skip
    for route in routes:
        response = admin.get(route)
        assert response.status_code in (200, 422), (route, response.status_code)
    for action in ("/rq/queue/planted/compact", "/rq/queue/planted/queued/empty", "/rq/requeue/default",
                   "/rq/queue/default/failed/empty"):  # fmt: skip
        response = admin.post(action, headers=_csrf(admin))
        assert response.status_code in (200, 422), (action, response.status_code)


def test_a_planted_worker_that_cannot_be_read_hides_no_other(app: Jobyard, admin: FlaskClient) -> None:
    from workers.worker import JobyardWorker

    worker = JobyardWorker(["default"], app=app, name="real-worker")
    worker.register_birth()
    try:
        # A hash whose dates are no dates, an entry in RQ's set of workers that is no worker key, and a worker
        # named with markup (valid otherwise): the real one and the named one are listed, the rest left out.
        app.redis.hset("rq:worker:garbage", mapping={"birth": "yesterday", "last_heartbeat": "\xff", "queues": "x"})
        app.redis.sadd("rq:workers", "rq:worker:garbage", "not-a-worker-key")
        marked = "<img src=x onerror=alert(1)>"
        app.redis.hset(f"rq:worker:{marked}", mapping={"queues": "default", "state": "idle"})
        app.redis.sadd("rq:workers", f"rq:worker:{marked}")
        listed = admin.get("/rq/0/data/workers.json")
        assert listed.status_code == 200, listed.status_code
        assert listed.json is not None
        assert sorted(w["name"] for w in listed.json["workers"]) == sorted([marked, "real-worker"])
        assert admin.get("/rq/0/view/workers").status_code == 200
    finally:
        worker.register_death()


def test_a_planted_entry_in_rqs_set_of_queues_hides_no_queue(app: Jobyard, admin: FlaskClient) -> None:
    enqueue("test.follower", app=app)
    assert app.flush()
    app.redis.sadd("rq:queues", "not-a-queue-key", b"rq:queue:\xff\xfe")
    assert admin.get("/rq/").status_code == 200
    assert admin.get("/rq/0/view/jobs").status_code == 200
    listed = admin.get("/rq/0/data/queues.json")
    assert listed.status_code == 200 and listed.json is not None
    assert [q["name"] for q in listed.json["queues"]] == ["default"]


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:s3cret@redis.example:6379/0",
        "redis://:p@ss-s3cret@redis.example:6379/0",  # an '@' in the password
        "rediss://redis.example:6380/0?password=s3cret&ssl_cert_reqs=none",  # a password in the query
        "unix:///run/redis.sock?db=0&password=s3cret",
    ],
)
def test_the_redis_instance_rq_shows_carries_no_password(web: Flask, url: str) -> None:
    from rq_dashboard import web as rq_web

    shown = rq_web.escape_format_instance_list(url)
    assert len(shown) == 1
    assert "s3cret" not in shown[0] and "ss-" not in shown[0], shown
    assert "redis" in shown[0]
    assert "s3cret" not in " ".join(rq_web.escape_format_instance_list((url, url)))
