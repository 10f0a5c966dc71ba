"""rq-dashboard's views, made to read JSON only and to answer for data they cannot read.

`read_json_only` swaps the RQ classes rq-dashboard's view module looks up by name for the JSON-only ones
of `readers.py` (its views call `Job.fetch`, `Queue.all`, `Worker.all` and `requeue_job` without a
serializer, which means pickle). `guard_views` wraps each of its views in one app: a job RQ cannot read
is shown as unreadable (200 with the fields saying so, or 422 for an action on it), a job that does not
exist is a 404, and neither is ever a 500.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request
from rq.exceptions import NoSuchJobError
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
# Views that describe one job: a job they cannot read is described as unreadable, not refused.
_JOB_DESCRIPTIONS = {"job_info"}


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


def read_json_only(web: Any) -> None:
    """Idempotent: every app built in the process shares rq-dashboard's module."""
    forbid_pickle()
    if getattr(web, _PATCHED, False):
        return
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
        try:
            return view(*args, **kwargs)
        except NoSuchJobError:
            raise NotFound("no such job in Redis") from None
        except NotImplementedError:
            # rq-dashboard asks RQ for what its newer releases dropped (removing one entry from the started
            # registry, which now records executions): refused, and nothing was changed.
            return jsonify(status="ERROR", error="this RQ release does not support that action"), 422
        except READ_ERRORS:
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
