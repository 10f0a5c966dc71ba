"""rq-dashboard's views, made to read JSON only and to answer for data they cannot read.

`read_json_only` swaps the RQ classes rq-dashboard's view module looks up by name for the JSON-only ones
of `readers.py` (its views call `Job.fetch`, `Queue.all`, `Worker.all` and `requeue_job` without a
serializer, which means pickle). `guard_views` wraps each of its views in one app: a job RQ cannot read
is shown as unreadable (200 with the fields saying so, or 422 for an action on it), a job that does not
exist is a 404, and neither is ever a 500. rq-dashboard takes its path segments on trust (a page size of 0
divided by zero, an unknown registry met an unbound variable, a page past Redis's integers was Redis's
error): a registry, order, page size or page number that names no page is a 404 before its view runs; an
action RQ refuses for the job's state (requeueing a job that has not failed) is a 409; and a key Redis
holds in another shape than RQ's (planted, or half-written) is a 422 like any other unreadable data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, jsonify, request
from redis.exceptions import ResponseError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from werkzeug.exceptions import NotFound, UnprocessableEntity

from dashboard.rq_guest.readers import (
    READ_ERRORS,
    UNREADABLE,
    GuestJob,
    GuestQueue,
    GuestSerializer,
    GuestWorker,
    UnreadableJob,
    forbid_pickle,
    requeue_job,
    unreadable_summary,
)

_PATCHED = "_jobyard_json_only"
# Data RQ cannot read, and keys Redis holds in another shape than RQ's (WRONGTYPE, a list that is no list).
_UNREADABLE_IN_REDIS: tuple[type[Exception], ...] = (*READ_ERRORS, ResponseError)
# Views that describe one job: a job they cannot read is described as unreadable, not refused.
_JOB_DESCRIPTIONS = {"job_info"}
# The registries rq-dashboard lists and empties, the orders it sorts in; pages are bounded so that an offset
# (page - 1) * per_page stays far inside Redis's 64-bit integers. Its own page-size box stops at 200.
REGISTRIES = frozenset({"queued", "failed", "deferred", "started", "finished", "scheduled", "canceled"})
ORDERS = frozenset({"asc", "dsc"})
MAX_PER_PAGE = 1000
MAX_PAGE = 1_000_000_000


def _names_a_page(kwargs: dict[str, Any]) -> bool:
    """Whether the path segments of a jobs list (or of emptying a registry) name one that can exist."""
    if "registry_name" in kwargs and kwargs["registry_name"] not in REGISTRIES:
        return False
    if "order" in kwargs and kwargs["order"] not in ORDERS:
        return False
    for name, most in (("per_page", MAX_PER_PAGE), ("page", MAX_PAGE)):
        if name in kwargs:
            try:
                number = int(str(kwargs[name]))
            except ValueError:
                return False
            if not 1 <= number <= most:
                return False
    return True


def _guard_summary(serialize: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(serialize)
    def guarded(job: Any) -> Any:
        if isinstance(job, UnreadableJob):
            return unreadable_summary(job.id)
        try:
            return serialize(job)
        except READ_ERRORS:
            return unreadable_summary(job.id)

    return guarded


def shown_instance(url: str) -> str:
    """A Redis URL as /rq's instance list shows it: scheme, host, port and path, never a credential.
    rq-dashboard masked only what lies between '://' and the first '@', so a password with an '@' in it, or one
    given in the query (`?password=`), was printed on every page."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    netloc = f"[{host}]{port}" if ":" in host else f"{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _instance_list(urls: Any) -> list[str]:
    return [shown_instance(str(u)) for u in (urls if isinstance(urls, list | tuple) else [urls]) if u]


def read_json_only(web: Any) -> None:
    """Idempotent: every app built in the process shares rq-dashboard's module."""
    forbid_pickle()
    if getattr(web, _PATCHED, False):
        return
    web.escape_format_instance_list = _instance_list
    web.Job = GuestJob
    web.Queue = GuestQueue
    web.Worker = GuestWorker
    web.requeue_job = requeue_job
    web.config.serializer = GuestSerializer
    web.serialize_job = _guard_summary(web.serialize_job)
    web.serialize_current_job = _guard_summary(web.serialize_current_job)
    setattr(web, _PATCHED, True)


def _guarded(endpoint: str, view: Callable[..., Any]) -> Callable[..., Any]:
    name = endpoint.rsplit(".", 1)[-1]

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not _names_a_page(kwargs):
            raise NotFound("no such list of RQ's jobs")
        if name == "empty_queue" and kwargs.get("registry_name") == "started":
            # RQ 3's started registry records executions in progress and cannot drop one entry: rq-dashboard
            # would delete the jobs' hashes one by one and fail at the first it could not remove, half done.
            # Stopping a running run is Jobyard's Cancel.
            return jsonify(status="ERROR", error="runs in progress are stopped with Cancel on Jobyard's runs"), 409
        try:
            return view(*args, **kwargs)
        except NoSuchJobError:
            raise NotFound("no such job in Redis") from None
        except InvalidJobOperation:
            # RQ requeues a job from its failed registry only; one queued, running or finished is left as it is.
            return jsonify(status="ERROR", error="RQ does not allow that action on the job in its state"), 409
        except NotImplementedError:
            # Another call rq-dashboard makes that RQ 3 dropped: an error answer rather than a 500.
            return jsonify(status="ERROR", error="this RQ release does not support that action"), 422
        except _UNREADABLE_IN_REDIS:
            if name in _JOB_DESCRIPTIONS:
                return jsonify(unreadable_summary(str(kwargs.get("job_id", "")))), 200
            if request.path.endswith(".json") or request.method == "POST":
                return jsonify(status="ERROR", error=UNREADABLE), 422
            raise UnprocessableEntity(f"RQ's data for this page is {UNREADABLE}") from None

    return guarded


def guard_views(app: Flask, blueprint: str) -> None:
    for endpoint, view in list(app.view_functions.items()):
        if endpoint.startswith(blueprint + ".") and not endpoint.endswith(".static"):
            app.view_functions[endpoint] = _guarded(endpoint, view)
