"""Hooks around job execution (dramatiq-style middleware).

The worker records every attempt and applies the retry policy itself; hooks carry the cross-cutting
policy that observes attempts: logging here, metrics, audit and notifications as they land.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from core import defaults
from jobs.status import FINAL, RunStatus
from workers.recording import Claim, Outcome

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.worker")
SUCCESSFUL = (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_WARNINGS)


class Hook:
    def __init__(self, app: Jobyard) -> None:
        self.app = app

    def before_attempt(self, claim: Claim) -> None:
        """Called after the attempt is recorded as started, before the job function runs."""

    def after_attempt(self, claim: Claim, outcome: Outcome) -> None:
        """Called after the attempt's outcome is committed to SQL."""


class LogAttempts(Hook):
    def after_attempt(self, claim: Claim, outcome: Outcome) -> None:
        if outcome.failure is None:
            log.info("%s %s attempt %d: %s", claim.type, claim.run_id, claim.attempt, outcome.status.value)
            return
        log.warning(
            "%s %s attempt %d: %s (%s: %s)%s",
            claim.type,
            claim.run_id,
            claim.attempt,
            outcome.status.value,
            outcome.failure.error_class,
            outcome.failure.message,
            f", next attempt at {outcome.next_attempt_at:%H:%M:%S}" if outcome.next_attempt_at else "",
        )


class FireDependents(Hook):
    """Starts the schedules that follow a job type ("after X completes successfully").

    Which types are followed is re-read every few seconds rather than per job: on a busy worker that
    lookup would otherwise cost more than the job record itself."""

    def __init__(self, app: Jobyard) -> None:
        super().__init__(app)
        self._followed: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def followed(self) -> frozenset[str]:
        if time.monotonic() - self._read_at > defaults.DEPENDENTS_REFRESH_S:
            from scheduler.firing import followed_types

            self._followed, self._read_at = followed_types(self.app), time.monotonic()
        return self._followed

    def after_attempt(self, claim: Claim, outcome: Outcome) -> None:
        if outcome.status in SUCCESSFUL and claim.type in self.followed():
            from scheduler.firing import fire_dependents

            fire_dependents(self.app, claim.type, claim.run_id)


class SettleDependents(Hook):
    """Queues (or cancels) the runs that wait for a run which just ended."""

    def after_attempt(self, claim: Claim, outcome: Outcome) -> None:
        if outcome.status in FINAL and outcome.has_dependents:
            from jobs.dependencies import settle_dependents

            settle_dependents(self.app, claim.run_id)


class Notify(Hook):
    """Mails the run's "notify me" addresses and its type's report recipients when it ends."""

    def after_attempt(self, claim: Claim, outcome: Outcome) -> None:
        declared = self.app.registry.get(claim.type)
        if outcome.status in FINAL and (outcome.notify or (declared is not None and declared.report_to)):
            from jobs.notifications import notify_finished

            notify_finished(self.app, claim.run_id)


DEFAULT_HOOKS: tuple[type[Hook], ...] = (LogAttempts, FireDependents, SettleDependents, Notify)


def run_hooks_after(hooks: list[Hook], claim: Claim, outcome: Outcome) -> None:
    for hook in hooks:
        try:
            hook.after_attempt(claim, outcome)
        except Exception:  # a broken hook must not lose the attempt's outcome, which is already stored
            log.exception("hook %s failed after attempt of %s", type(hook).__name__, claim.run_id)
