"""Per-type retry policy: how many attempts and how long to wait between them.

Written with tenacity's stop and wait strategies, but applied *between* attempts by rescheduling the run
in RQ's scheduled registry, so no worker sleeps through a backoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import tenacity

from core import defaults


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = defaults.DEFAULT_MAX_ATTEMPTS
    backoff_base_s: float = defaults.DEFAULT_BACKOFF_BASE_S
    backoff_max_s: float = defaults.DEFAULT_BACKOFF_MAX_S

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff seconds cannot be negative")

    def _stop(self) -> tenacity.stop.stop_base:
        return tenacity.stop_after_attempt(self.max_attempts)

    def _wait(self) -> tenacity.wait.wait_base:
        return tenacity.wait_exponential(multiplier=self.backoff_base_s, max=self.backoff_max_s)

    def delay_after(self, failed_attempt: int, *, max_attempts: int | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when `failed_attempt` was the last one.

        `max_attempts` overrides the declared count for a run created under an older declaration.
        """
        state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = failed_attempt
        stop = self._stop() if max_attempts is None else tenacity.stop_after_attempt(max_attempts)
        if stop(state):
            return None
        return float(self._wait()(state))
