"""What a principal may do, done: the one place where pages and the API check roles, act, and audit.

Each function takes the principal making the request. An object outside their view raises `NotFound`
(answered 404, so its existence is not revealed); a visible object they may not change raises `Forbidden`
(403); a state that does not allow the action raises `Conflict` (409). Bad input raises the domain's
own errors (`InvalidJobRequest`, `TriggerError`, `BadRecipients`, `BadFilter`), answered 400/422.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core import defaults
from dashboard.auth import audit
from dashboard.auth.roles import Principal
from jobs.actions import RunNotFound, RunNotRetryable, retry_run
from jobs.cancel import RunNotCancellable, cancel_run
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.models import runs_table as runs
from jobs.notifications import notify_me
from jobs.params import InvalidJobRequest, resolve_type, unseal_secrets, validate_params
from jobs.queries import run_detail
from jobs.run_search import RunFilter, RunPage, page_of_runs
from jobs.status import RunStatus
from jobs.type_settings import clean_addresses, report_recipients, set_report_recipients
from scheduler import schedules
from scheduler.schedules import ScheduleNotFound, ScheduleRow
from scheduler.triggers import Trigger, TriggerError

if TYPE_CHECKING:
    from core.app import Jobyard
    from jobs.registry import JobType


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    pass


class Conflict(ValueError):
    """`reason` names the state that refused the action in a word or two (a run's status, `waiting_on_dependency`,
    `type_not_declared`), for the bulk summary; the message says it to a human."""

    def __init__(self, message: str, *, reason: str = "conflict") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where (for the audit trail)."""

    principal: Principal
    remote_addr: str | None = None

    @property
    def name(self) -> str:
        return self.principal.name


def _audit(app: Jobyard, actor: Actor, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    audit.record(app.engine, actor.name, action, target, detail, actor.remote_addr)


# Job types


def visible_types(app: Jobyard, principal: Principal) -> list[JobType]:
    return [t for t in app.registry if principal.sees_type(t)]


def job_type(app: Jobyard, principal: Principal, name: str) -> JobType:
    declared = app.registry.get(name)
    if declared is None or not principal.sees_type(declared):
        raise NotFound(f"no job type {name!r}")
    return declared


def start(
    app: Jobyard,
    actor: Actor,
    type_name: str,
    params: dict[str, Any] | None,
    *,
    from_text: bool = False,
    at: datetime | None = None,
    idempotency_key: str | None = None,
    notify: Iterable[str] = (),
) -> str:
    """Starts a run ("Start" on the job types page, `POST /api/v1/runs`): now, or at `at`."""
    declared = job_type(app, actor.principal, type_name)
    if not actor.principal.may_start(declared):
        raise Forbidden(f"{actor.name} may not start {type_name}")
    clean = validate_params(declared, params or {}, dirs=app.settings.server_dirs, from_text=from_text)
    addresses = tuple(clean_addresses(notify))
    domain = actor.principal.domain if declared.domain is None else declared.domain
    request = EnqueueRequest(
        type_name, clean, at=at, triggered_by=actor.name, domain=domain, idempotency_key=idempotency_key,
        notify=addresses,
    )  # fmt: skip
    [run_id] = enqueue_many([request], app=app)
    _audit(app, actor, "start", run_id, {"type": type_name})
    return run_id


def report_to(app: Jobyard, principal: Principal, type_name: str) -> tuple[str, ...]:
    return report_recipients(app.engine, job_type(app, principal, type_name))


def configure_reports(app: Jobyard, actor: Actor, type_name: str, addresses: Iterable[str]) -> list[str]:
    declared = job_type(app, actor.principal, type_name)
    if not actor.principal.may_configure(declared):
        raise Forbidden(f"{actor.name} may not configure {type_name}")
    recipients = set_report_recipients(app.engine, type_name, addresses, by=actor.name)
    _audit(app, actor, "schedule_set", type_name, {"report_to": recipients})
    return recipients


# Runs


def list_runs(
    app: Jobyard, principal: Principal, filters: RunFilter, *, cursor: str | None = None, limit: int | None = None
) -> RunPage:
    kwargs = {"limit": limit} if limit is not None else {}
    return page_of_runs(app.engine, filters, scope=principal.run_scope(), cursor=cursor, **kwargs)


def _visible_run(app: Jobyard, principal: Principal, run_id: str) -> Any:
    with app.engine.connect() as conn:
        row = conn.execute(
            select(runs.c.id, runs.c.type, runs.c.domain, runs.c.triggered_by, runs.c.params, runs.c.status).where(
                runs.c.id == run_id
            )
        ).first()
    if row is None or not principal.sees_run(row):
        raise NotFound(f"no run {run_id!r}")
    return row


def run(app: Jobyard, principal: Principal, run_id: str) -> dict[str, Any]:
    _visible_run(app, principal, run_id)
    detail = run_detail(app.engine, run_id)
    if detail is None:
        raise NotFound(f"no run {run_id!r}")
    return detail


def _actionable_run(app: Jobyard, actor: Actor, run_id: str) -> Any:
    row = _visible_run(app, actor.principal, run_id)
    if not actor.principal.may_act_on_run(row):
        raise Forbidden(f"{actor.name} may not change run {run_id}")
    return row


def retry(app: Jobyard, actor: Actor, run_id: str) -> None:
    _actionable_run(app, actor, run_id)
    try:
        retry_run(app, run_id, by=actor.name)
    except RunNotFound:
        raise NotFound(f"no run {run_id!r}") from None
    except RunNotRetryable as exc:
        raise Conflict(str(exc), reason=exc.reason) from None
    _audit(app, actor, "retry", run_id)


def cancel(app: Jobyard, actor: Actor, run_id: str) -> str:
    """Returns `cancelled`, or `running` when a running run was asked to stop."""
    _actionable_run(app, actor, run_id)
    try:
        status = cancel_run(app, run_id, by=actor.name)
    except RunNotFound:
        raise NotFound(f"no run {run_id!r}") from None
    except RunNotCancellable as exc:
        raise Conflict(str(exc), reason=exc.status) from None
    _audit(app, actor, "cancel", run_id, {"status": status.value})
    return status.value


def run_again(app: Jobyard, actor: Actor, run_id: str) -> str:
    """A new run of the same type with the same parameters; the original stays as it was."""
    row = _actionable_run(app, actor, run_id)
    declared = app.registry.get(row.type)
    if declared is None:
        raise Conflict(f"job type {row.type!r} is no longer declared", reason="type_not_declared")
    if not actor.principal.may_start(declared):
        raise Forbidden(f"{actor.name} may not start {row.type}")
    try:
        params = validate_params(
            declared, unseal_secrets(row.params, app.settings.secret_key), dirs=app.settings.server_dirs
        )
    except InvalidJobRequest as exc:
        # The type's parameters changed since this run started; the run itself is left as it was.
        raise Conflict(f"run {run_id} no longer fits {row.type}: {exc}", reason="invalid_params") from None
    request = EnqueueRequest(row.type, params, triggered_by=actor.name, domain=row.domain)
    [new_id] = enqueue_many([request], app=app)
    _audit(app, actor, "run_again", run_id, {"new_run": new_id})
    return new_id


def notify(app: Jobyard, actor: Actor, run_id: str, addresses: Iterable[str]) -> list[str]:
    """Seed 004's "notify me": whoever may act on a run may ask to be mailed when it ends (a viewer may
    not: it changes the run's record and sends mail)."""
    _actionable_run(app, actor, run_id)
    merged = notify_me(app, run_id, addresses)
    _audit(app, actor, "notify", run_id, {"addresses": list(addresses)})
    return merged


BULK_ACTIONS = ("retry", "cancel", "run_again")
# A bulk action takes at most the runs one page of runs can show (and the API's body as many ids): each costs a
# query or more, and the page's form would otherwise take as many as the request size allows.
MAX_BULK_RUNS = defaults.RUNS_PAGE_SIZE_MAX
# Why a bulk action left a run alone, in the plain words of the summary. A run's own status says it best
# (a cancelled run is not retried, a completed one not cancelled); the rest are what the run's state or
# the principal's role does not allow.
SKIP_REASONS: dict[str, str] = {
    "cancelled": "cancelled",
    "waiting_on_dependency": "waiting on a dependency",
    "failed": "failed",
    "completed": "completed",
    "completed_with_warnings": "completed with warnings",
    "running": "running",
    "retrying": "retrying",
    "pending": "pending",
    "scheduled": "scheduled",
    "waiting": "waiting for their turn",
    "type_not_declared": "of a job type no longer declared",
    "invalid_params": "with parameters the job type no longer accepts",
    "not_found": "not found",
    "not_allowed": "not allowed",
}
_DONE = {"retry": "retried {}", "cancel": "cancelled {}", "run_again": "ran {} again"}


@dataclass(frozen=True)
class BulkResult:
    """One run's outcome: `status` (retry, cancel: the run's status now), `new_id` (run again), or, when
    the run was left alone, `reason` (a key of SKIP_REASONS) and `error` (the whole refusal)."""

    run_id: str
    ok: bool
    status: str | None = None
    new_id: str | None = None
    reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class BulkOutcome:
    action: str
    results: tuple[BulkResult, ...]

    @property
    def acted(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        """Most frequent reason first; ties in the order the runs were given."""
        counts: dict[str, int] = {}
        for result in self.results:
            if not result.ok:
                reason = result.reason or "not_allowed"
                counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))

    @property
    def message(self) -> str:
        """One line for the operator: `retried 12, skipped 38: 30 cancelled, 8 waiting on a dependency`."""
        done = _DONE[self.action].format(self.acted)
        stopping = sum(1 for r in self.results if r.ok and r.status == RunStatus.RUNNING)
        if stopping:
            done += f" ({stopping} running, asked to stop)"
        skipped = self.skipped_by_reason
        if not skipped:
            return done
        reasons = ", ".join(f"{count} {SKIP_REASONS.get(reason, reason)}" for reason, count in skipped.items())
        return f"{done}, skipped {sum(skipped.values())}: {reasons}"


def _act(app: Jobyard, actor: Actor, action: str, run_id: str) -> BulkResult:
    try:
        if action == "retry":
            retry(app, actor, run_id)
            return BulkResult(run_id, True, status=RunStatus.PENDING.value)
        if action == "cancel":
            return BulkResult(run_id, True, status=cancel(app, actor, run_id))
        return BulkResult(run_id, True, new_id=run_again(app, actor, run_id))
    except NotFound as exc:
        return BulkResult(run_id, False, reason="not_found", error=str(exc))
    except Forbidden as exc:
        return BulkResult(run_id, False, reason="not_allowed", error=str(exc))
    except Conflict as exc:
        return BulkResult(run_id, False, reason=exc.reason, error=str(exc))


def bulk(app: Jobyard, actor: Actor, action: str, run_ids: Iterable[str]) -> BulkOutcome:
    """Applies one action to each distinct run, in the order given; a run the action does not fit (a
    cancelled or dependency-waiting run for Retry, an ended one for Cancel) is left alone with its reason."""
    if action not in BULK_ACTIONS:
        raise Conflict(f"unknown action {action!r}; one of {', '.join(BULK_ACTIONS)}")
    distinct = list(dict.fromkeys(run_ids))
    if len(distinct) > MAX_BULK_RUNS:
        raise Conflict(f"select at most {MAX_BULK_RUNS} runs at once ({len(distinct)} were selected); nothing was done")
    return BulkOutcome(action, tuple(_act(app, actor, action, run_id) for run_id in distinct))


# Schedules


def visible_schedules(app: Jobyard, principal: Principal) -> list[ScheduleRow]:
    return [s for s in schedules.list_all(app) if (t := app.registry.get(s.type)) and principal.sees_type(t)]


def schedule(app: Jobyard, principal: Principal, type_name: str) -> ScheduleRow | None:
    job_type(app, principal, type_name)
    try:
        return schedules.get(app, type_name)
    except ScheduleNotFound:
        return None


def _configurable(app: Jobyard, actor: Actor, type_name: str) -> JobType:
    declared = job_type(app, actor.principal, type_name)
    if not actor.principal.may_configure(declared):
        raise Forbidden(f"{actor.name} may not change the schedule of {type_name}")
    return declared


def set_schedule(
    app: Jobyard,
    actor: Actor,
    type_name: str,
    trigger: Trigger,
    params: dict[str, Any] | None = None,
    *,
    from_text: bool = False,
) -> ScheduleRow:
    _configurable(app, actor, type_name)
    followed = trigger.spec.get("type") if trigger.kind == "after" else None
    if followed is not None and ((t := app.registry.get(followed)) is None or not actor.principal.sees_type(t)):
        # A type outside their view is reported exactly as a type that does not exist.
        raise TriggerError(f"--after names unknown job type {followed!r}")
    row = schedules.set_schedule(app, type_name, trigger, by=actor.name, params=params, from_text=from_text)
    _audit(app, actor, "schedule_set", type_name, {"trigger": trigger.describe()})
    return row


def set_schedule_enabled(app: Jobyard, actor: Actor, type_name: str, enabled: bool) -> ScheduleRow:
    _configurable(app, actor, type_name)
    try:
        row = schedules.set_mode(app, type_name, enabled=enabled, by=actor.name)
    except ScheduleNotFound:
        raise NotFound(f"job type {type_name!r} has no schedule") from None
    _audit(app, actor, "schedule_enable" if enabled else "schedule_disable", type_name)
    return row


def run_now(app: Jobyard, actor: Actor, type_name: str, params: dict[str, Any] | None = None) -> str:
    """Seed 001's "Run now": with the schedule's parameters; the next execution does not move."""
    declared = job_type(app, actor.principal, type_name)
    if not actor.principal.may_start(declared):
        raise Forbidden(f"{actor.name} may not start {type_name}")
    resolve_type(app.registry, type_name)
    run_id = schedules.run_now(app, type_name, by=actor.name, params=params)
    _audit(app, actor, "run_now", type_name, {"run": run_id})
    return run_id


def delete_schedule(app: Jobyard, actor: Actor, type_name: str) -> None:
    """Removes a type's plan; a declared default comes back as `automatic` at the next scheduler start."""
    _configurable(app, actor, type_name)
    try:
        schedules.remove(app, type_name)
    except ScheduleNotFound:
        raise NotFound(f"job type {type_name!r} has no schedule") from None
    _audit(app, actor, "schedule_delete", type_name)
