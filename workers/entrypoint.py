"""The only callable a Jobyard RQ job may name. It runs the declared job type of the claimed run."""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.context import JobContext
from jobs.params import unseal_secrets
from workers.recording import Claim

if TYPE_CHECKING:
    from core.app import Jobyard


@dataclass(frozen=True)
class ActiveAttempt:
    app: Jobyard
    claim: Claim
    context: JobContext


current_attempt: ContextVar[ActiveAttempt | None] = ContextVar("jobyard_current_attempt", default=None)


class NotInJobyardWorker(RuntimeError):
    pass


class UnknownJobType(LookupError):
    pass


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return {"repr": repr(value)[:2000]}
    return value


def execute_run(run_id: str) -> Any:
    active = current_attempt.get()
    # Reached only through JobyardWorker, which claims the run in SQL first; a plain RQ worker
    # picking this job up must not run anything.
    if active is None or active.claim.run_id != run_id:
        raise NotInJobyardWorker(f"run {run_id} can only be executed by a Jobyard worker")
    declared = active.app.registry.get(active.claim.type)
    if declared is None:
        raise UnknownJobType(f"job type {active.claim.type!r} is not declared on this worker")
    params = unseal_secrets(active.claim.params, active.app.settings.secret_key)
    active.context.params = params
    return _json_safe(declared.func(active.context, **params))
