from __future__ import annotations

import pytest

from jobs.retry import RetryPolicy
from jobs.status import (
    FINAL,
    RETRYABLE_BY_HAND,
    TRANSITIONS,
    IllegalTransition,
    RunStatus,
    check_transition,
    sources_of,
)


def test_default_policy_is_five_attempts_with_doubling_waits() -> None:
    policy = RetryPolicy(backoff_base_s=1.0)
    delays = [policy.delay_after(n) for n in range(1, 6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, None]
    assert RetryPolicy().max_attempts == 5


def test_waits_are_capped() -> None:
    policy = RetryPolicy(max_attempts=20, backoff_base_s=10, backoff_max_s=60)
    assert policy.delay_after(10) == 60


def test_run_snapshot_of_max_attempts_wins() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_base_s=1)
    assert policy.delay_after(2, max_attempts=2) is None
    assert policy.delay_after(2, max_attempts=3) == 2.0


def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_final_statuses_only_leave_through_a_manual_retry() -> None:
    for status in FINAL:
        assert TRANSITIONS[status] <= {RunStatus.PENDING}
    with pytest.raises(IllegalTransition, match="a completed run cannot become running"):
        check_transition(RunStatus.COMPLETED, RunStatus.RUNNING)


def test_only_a_failed_run_is_retried_and_a_cancelled_one_stays_cancelled() -> None:
    assert set(RETRYABLE_BY_HAND) == {RunStatus.FAILED}
    assert TRANSITIONS[RunStatus.CANCELLED] == frozenset() and RunStatus.CANCELLED in FINAL
    with pytest.raises(IllegalTransition, match="a cancelled run cannot become pending"):
        check_transition(RunStatus.CANCELLED, RunStatus.PENDING)


def test_running_is_reached_only_from_startable_statuses() -> None:
    assert sources_of(RunStatus.RUNNING) == {
        RunStatus.SCHEDULED,
        RunStatus.PENDING,
        RunStatus.WAITING,
        RunStatus.RETRYING,
    }
