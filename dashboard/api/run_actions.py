"""Acting on runs: retry, cancel, run again, notify when finished, and any of the first three in bulk."""

from __future__ import annotations

from typing import Any

from flask import Response

from dashboard import operations
from dashboard.api.errors import invalid_field
from dashboard.api.routes import Call, Reply, operation, reply
from dashboard.api.runs import created_run
from dashboard.api.schemas import ref
from jobs.status import RunStatus
from jobs.type_settings import BadRecipients, clean_addresses

EMPTY_BODY = ref("Empty")


@operation(
    "POST",
    "/runs/{run_id}/retry",
    summary="Retry a failed run",
    description="Starts a new attempt series; the earlier attempts stay in its history. 409 when the run is "
    "not failed, or depends on a run that has not completed. A cancelled run stays cancelled (an abort "
    "cannot be undone): `run-again` starts a new run with its parameters.",
    tag="runs",
    body=EMPTY_BODY,
    replies=(Reply(202, "Accepted: the run is pending again.", ref("RunState")),),
    writes=True,
    conflict=True,
)
def retry_run(call: Call, run_id: str) -> Response:
    call.body()
    operations.retry(call.app, call.actor, run_id)
    return reply({"id": run_id, "status": RunStatus.PENDING.value}, 202)


@operation(
    "POST",
    "/runs/{run_id}/cancel",
    summary="Cancel a run",
    description="A run that has not started is cancelled at once (`cancelled`); a running one is asked to "
    "stop and answers `running` until it has. 409 when the run has already ended.",
    tag="runs",
    body=EMPTY_BODY,
    replies=(Reply(200, "What became of the run.", ref("RunState")),),
    writes=True,
    conflict=True,
)
def cancel_run(call: Call, run_id: str) -> Response:
    call.body()
    return reply({"id": run_id, "status": operations.cancel(call.app, call.actor, run_id)})


@operation(
    "POST",
    "/runs/{run_id}/run-again",
    summary="Start a new run with the same parameters",
    description="The original run stays as it was; a cancelled run is started again this way. 409 when its "
    "job type is no longer declared or no longer accepts the run's parameters.",
    tag="runs",
    body=EMPTY_BODY,
    replies=(Reply(201, "The new run.", ref("RunCreated"), location=True),),
    writes=True,
    conflict=True,
)
def run_again(call: Call, run_id: str) -> Response:
    call.body()
    return created_run(call, operations.run_again(call.app, call.actor, run_id))


@operation(
    "POST",
    "/runs/{run_id}/notify",
    summary="Mail these addresses when the run ends",
    description="Whoever may act on the run may ask (viewers may not); a run that has already ended is "
    "reported at once.",
    tag="runs",
    body=ref("Notify"),
    body_required=True,
    replies=(Reply(200, "Every address the run will notify.", ref("NotifyList")),),
    writes=True,
)
def notify_run(call: Call, run_id: str) -> Response:
    operations.run(call.app, call.principal, run_id)  # 404 before looking at the body
    try:
        addresses = clean_addresses(call.body()["addresses"])
    except BadRecipients as exc:
        raise invalid_field("addresses", str(exc)) from None
    if not addresses:
        raise invalid_field("addresses", "needs at least one address")
    return reply({"id": run_id, "notify": operations.notify(call.app, call.actor, run_id, addresses)})


def _result(result: operations.BulkResult) -> dict[str, Any]:
    if not result.ok:
        return {"id": result.run_id, "ok": False, "reason": result.reason, "error": result.error}
    if result.new_id is not None:
        return {"id": result.run_id, "ok": True, "new_id": result.new_id}
    return {"id": result.run_id, "ok": True, "status": result.status}


@operation(
    "POST",
    "/runs/bulk",
    summary="Retry, cancel or run again many runs",
    description="Each run is handled on its own: the answer is 200 with one outcome per distinct id, in the "
    "order given, and a summary. Retry acts on failed runs only; a run the caller may not see or act on, or "
    "whose state does not allow the action (for Retry: cancelled, waiting on a dependency, running, "
    "completed…), is `ok: false` with its `reason` and the whole `error`, and counted in "
    "`summary.skipped_by_reason`.",
    tag="runs",
    body=ref("Bulk"),
    body_required=True,
    replies=(Reply(200, "One outcome per run, and their summary.", ref("BulkOutcome")),),
    writes=True,
)
def bulk_action(call: Call) -> Response:
    body = call.body()
    outcome = operations.bulk(call.app, call.actor, body["action"], body["ids"])
    summary = {
        "acted": outcome.acted,
        "skipped": len(outcome.results) - outcome.acted,
        "skipped_by_reason": outcome.skipped_by_reason,
        "message": outcome.message,
    }
    return reply({"action": outcome.action, "results": [_result(r) for r in outcome.results], "summary": summary})
