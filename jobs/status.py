"""Run statuses and the one state machine that says which moves are allowed."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time
    PENDING = "pending"  # queued in Redis
    WAITING = "waiting"  # exclusive type or dependency not yet satisfied
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed; the next one is due at next_attempt_at
    COMPLETED = "completed"
    COMPLETED_WITH_WARNINGS = "completed_with_warnings"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = RunStatus

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    S.SCHEDULED: frozenset({S.PENDING, S.RUNNING, S.WAITING, S.CANCELLED}),
    S.PENDING: frozenset({S.RUNNING, S.WAITING, S.CANCELLED, S.FAILED}),
    S.WAITING: frozenset({S.PENDING, S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.COMPLETED_WITH_WARNINGS, S.RETRYING, S.FAILED, S.CANCELLED}),
    S.RETRYING: frozenset({S.RUNNING, S.PENDING, S.WAITING, S.CANCELLED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.COMPLETED_WITH_WARNINGS: frozenset(),
    # Only an explicit retry leaves it; it starts a new attempt series.
    S.FAILED: frozenset({S.PENDING}),
    # An abort cannot be undone (seed 004): the same work starts again only as a new run (Run again).
    S.CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):
    def __init__(self, current: RunStatus, target: RunStatus) -> None:
        super().__init__(f"a {current.value} run cannot become {target.value}")
        self.current = current
        self.target = target


def sources_of(target: RunStatus) -> frozenset[RunStatus]:
    """Statuses from which `target` may be reached; used as the WHERE of conditional updates."""
    return frozenset(src for src, targets in TRANSITIONS.items() if target in targets)


def check_transition(current: RunStatus, target: RunStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)


# Derived from TRANSITIONS, so that the conditional updates and the state machine cannot disagree.
FINAL: frozenset[RunStatus] = frozenset(s for s, targets in TRANSITIONS.items() if targets <= {S.PENDING})
# A worker may start an attempt only from these.
CLAIMABLE: frozenset[RunStatus] = sources_of(S.RUNNING)
# Runs the transport (Redis) must be holding (a waiting run is held back on purpose).
AWAITING_DISPATCH: frozenset[RunStatus] = CLAIMABLE - {S.WAITING}
# Cancelled at once; a running run is asked to stop instead.
CANCELLABLE_AT_ONCE: frozenset[RunStatus] = sources_of(S.CANCELLED) - {S.RUNNING}
RETRYABLE_BY_HAND: frozenset[RunStatus] = FINAL & sources_of(S.PENDING)
