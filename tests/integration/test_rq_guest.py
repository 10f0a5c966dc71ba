"""rq-dashboard at /rq: admins only, its POST actions under Jobyard's CSRF check, its GET bulk requeue blocked,
nothing it reads ever unpickled, every job field escaped under a strict CSP."""

from __future__ import annotations

import base64
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from jinja2 import Environment
from rq import Queue
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from core.app import Jobyard
from dashboard.rq_guest.templates import EscapedRqTemplates
from jobs.enqueue import enqueue
from tests.webclient import login


def _csrf_cookie(client: Any) -> str:
    cookie = client.get_cookie("_csrf_token", path="/rq")
    assert cookie is not None, "rq-dashboard's pages must carry the CSRF cookie its JavaScript reads"
    return str(cookie.value)


def test_admin_sees_rq_dashboard_with_jobyard_queues(app: Jobyard, web: Flask, users: Any) -> None:
    users.add("root", "admin")
    enqueue("test.follower", app=app)
    assert app.flush()
    client = login(web, "root")
    page = client.get("/rq/")
    assert page.status_code == 200
    assert "<title>RQ dashboard</title>" in page.get_data(as_text=True)
    assert 'href="/runs">Jobyard\'s runs</a> are the record' in page.get_data(as_text=True)
    queues = client.get("/rq/0/data/queues.json").json
    assert any(q["name"] == "default" and q["count"] == 1 for q in queues["queues"])


def test_non_admins_are_refused(web: Flask, users: Any) -> None:
    users.add("vera", "viewer")
    users.add("olga", "operator")
    users.add("sam", "domain_admin", domain="sales")
    for name in ("vera", "olga", "sam"):
        assert login(web, name).get("/rq/").status_code == 403


def test_post_actions_need_the_csrf_token_rq_dashboard_sends(app: Jobyard, web: Flask, users: Any) -> None:
    users.add("root", "admin")
    run_id = enqueue("test.follower", app=app)
    assert app.flush()
    client = login(web, "root")
    client.get("/rq/")
    assert client.post(f"/rq/job/{run_id}/delete").status_code == 400
    assert app.redis.exists(f"rq:job:{run_id}")
    response = client.post(f"/rq/job/{run_id}/delete", headers={"X-CSRFToken": _csrf_cookie(client)})
    assert response.status_code == 200
    assert not app.redis.exists(f"rq:job:{run_id}")


def test_bulk_requeue_is_post_only(web: Flask, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    client.get("/rq/")
    assert client.get("/rq/requeue/default").status_code == 405
    response = client.post("/rq/requeue/default", headers={"X-CSRFToken": _csrf_cookie(client)})
    assert response.status_code == 200
    assert response.json["status"] == "OK"


# Jobs planted in Redis by someone who can write to it: pickles that would run code when loaded, bytes that
# are not UTF-8, fields of the wrong shape. rq-dashboard must show them as unreadable and never load them.

REGISTRIES = ("queued", "failed", "started", "finished", "deferred", "scheduled", "canceled")


class _Bomb:
    """Unpickling it creates `path`: the marker that proves something loaded a pickle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _plant(app: Jobyard, job_id: str, marker: Path, **fields: bytes) -> None:
    """A job hash of Jobyard's shape (JSON) in the default queue and every registry, with `fields` replaced."""
    queue = Queue("default", connection=app.redis, serializer=JSONSerializer)
    job = Job.create("jobs.dispatch.execute", args=[job_id], id=job_id, connection=app.redis,
                     serializer=JSONSerializer, origin="default", description=f"planted {job_id}")  # fmt: skip
    job.save()
    if fields:
        app.redis.hset(job.key, mapping=fields)
    app.redis.rpush(queue.key, job_id)
    app.redis.sadd(Queue.redis_queues_keys, queue.key)
    registries = (queue.failed_job_registry, queue.started_job_registry, queue.finished_job_registry,
                  queue.deferred_job_registry, queue.scheduled_job_registry, queue.canceled_job_registry)  # fmt: skip
    for registry in registries:
        app.redis.zadd(registry.key, {job_id: 9_999_999_999})
    bomb = base64.b64encode(pickle.dumps(_Bomb(marker)))
    app.redis.xadd(Result.get_key(job_id), {"type": Result.Type.SUCCESSFUL.value, "return_value": bomb})
    app.redis.xadd(Result.get_key(job_id), {"type": Result.Type.FAILED.value, "exc_string": b"not base64"})
    not_zlib = base64.b64encode(b"not zlib")
    app.redis.xadd(Result.get_key(job_id), {"type": Result.Type.FAILED.value, "exc_string": not_zlib})


PLANTED = {
    "pickled-meta": lambda bomb: {"meta": bomb},
    "pickled-data": lambda bomb: {"data": bomb},
    "pickled-result": lambda bomb: {"result": bomb},
    "meta-not-utf8": lambda bomb: {"meta": b"\xff\xfe\x80 not text"},
    "date-not-a-date": lambda bomb: {"created_at": b"yesterday", "ended_at": b"\xff"},
}


def _job_routes(job_id: str) -> list[str]:
    lists = [f"/rq/0/view/jobs/default/{r}/8/asc/1" for r in REGISTRIES]
    data = [f"/rq/0/data/jobs/default/{r}/8/{order}/1.json" for r in REGISTRIES for order in ("asc", "dsc")]
    return [
        "/rq/", "/rq/0/view/queues", "/rq/0/view/workers", "/rq/0/view/jobs", "/rq/0/data/queues.json",
        "/rq/0/data/workers.json", f"/rq/0/view/job/{job_id}", f"/rq/0/data/job/{job_id}.json", *lists, *data,
    ]  # fmt: skip


@pytest.mark.parametrize("planted", sorted(PLANTED))
def test_a_planted_job_is_shown_unreadable_and_never_unpickled(
    app: Jobyard, web: Flask, users: Any, tmp_path: Path, planted: str
) -> None:
    users.add("root", "admin")
    marker = tmp_path / "unpickled"
    bomb = pickle.dumps(_Bomb(marker))
    job_id = f"planted-{planted}"
    _plant(app, job_id, marker, **PLANTED[planted](bomb))
    client = login(web, "root")
    for route in _job_routes(job_id):
        response = client.get(route)
        assert response.status_code < 500 and response.status_code != 404, (route, response.status_code)
    info = client.get(f"/rq/0/data/job/{job_id}.json").json
    assert info["id"] == job_id
    if planted in ("pickled-meta", "meta-not-utf8"):
        assert "unreadable" in info["metadata"]
    listed = client.get("/rq/0/data/jobs/default/failed/8/asc/1.json").json
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    headers = {"X-CSRFToken": _csrf_cookie(client)}
    for action in (f"/rq/job/{job_id}/requeue", "/rq/requeue/default", "/rq/queue/default/compact",
                   *(f"/rq/queue/default/{r}/empty" for r in REGISTRIES), f"/rq/job/{job_id}/delete"):  # fmt: skip
        assert client.post(action, headers=headers).status_code < 500, action
    assert not marker.exists(), "a pickle planted in Redis was loaded by the web process"


def test_rq_answers_404_for_a_missing_job_or_another_redis(web: Flask, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    for route in ("/rq/0/view/job/nosuchjob", "/rq/0/data/job/nosuchjob.json", "/rq/1/view/queues",
                  "/rq/7/data/queues.json"):  # fmt: skip
        assert client.get(route).status_code == 404, route


def test_every_rq_template_is_served_escaped_with_the_nonce_on_its_own_script() -> None:
    loader = EscapedRqTemplates()
    names = loader.list_templates()
    assert "rq_dashboard/job.html" in names and "rq_dashboard/scripts/jobs.js" in names
    for name in names:
        source, _, _ = loader.get_source(Environment(), name)
        assert "<%=" not in source, name
        assert ".text(" not in source or ").html()" not in source, name
        for script in re.findall(r"<script[^>]*>", source):
            assert "src=" in script or 'type="text/template"' in script or "nonce=" in script, (name, script)


def test_rq_pages_carry_a_strict_csp_whose_nonce_only_its_own_script_has(app: Jobyard, web: Flask, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    for route in ("/rq/", "/rq/0/view/workers", "/rq/0/view/jobs", "/rq/0/view/job/x", "/rq/0/data/queues.json"):
        response = client.get(route)
        policy = response.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0], route
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    page = client.get("/rq/")
    nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)  # type: ignore[union-attr]
    inline = [s for s in re.findall(r"<script[^>]*>", page.get_data(as_text=True)) if "src=" not in s]
    assert inline and all(f'nonce="{nonce}"' in s for s in inline if "text/template" not in s)
    assert nonce not in client.get("/rq/").headers["Content-Security-Policy"], "a nonce is never reused"


def test_emptying_the_started_registry_is_refused_and_deletes_nothing(app: Jobyard, web: Flask, users: Any) -> None:
    users.add("root", "admin")
    queue = Queue("default", connection=app.redis, serializer=JSONSerializer)
    ids = [f"running-{n}" for n in range(3)]
    for job_id in ids:
        Job.create("workers.entrypoint.execute_run", args=[job_id], id=job_id, connection=app.redis,
                   serializer=JSONSerializer, origin="default").save()  # fmt: skip
        app.redis.zadd(queue.started_job_registry.key, {job_id: 9_999_999_999})
    client = login(web, "root")
    client.get("/rq/")
    response = client.post("/rq/queue/default/started/empty", headers={"X-CSRFToken": _csrf_cookie(client)})
    assert response.status_code == 409 and "Cancel" in response.json["error"]
    assert all(app.redis.exists(Job.key_for(job_id)) for job_id in ids)
