"""How values look on the pages: times in UTC, durations, statuses and their icons."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.defaults import LIVE_REFRESH_MS
from dashboard.pages.forms import input_kind
from dashboard.pages.views import pages
from jobs.status import FINAL, RETRYABLE_BY_HAND, RunStatus

# Seed 001's last-run icons: a blinking grey circle while running, a green tick, an attention sign when
# it succeeded with warnings, a cross when it failed. Statuses still waiting get a hollow circle.
ICONS: dict[str, tuple[str, str]] = {
    "running": ("●", "running"),
    "pending": ("○", "waiting"),
    "scheduled": ("○", "waiting"),
    "waiting": ("○", "waiting"),
    "retrying": ("↻", "retrying"),
    "completed": ("✓", "ok"),
    "completed_with_warnings": ("⚠", "warning"),
    "failed": ("✗", "failed"),
    "cancelled": ("✗", "cancelled"),
}
# The list's status filter groups statuses as its icons do.
ICON_GROUPS = (("running", "Running"), ("ok", "Succeeded"), ("warning", "Warnings"), ("failed", "Failed"))


def as_datetime(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@pages.app_template_filter("when")
def when(value: str | datetime | None) -> str:
    """`2025-03-01 14:05:09` (UTC), or an em dash."""
    moment = as_datetime(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


@pages.app_template_filter("iso")
def iso(value: str | datetime | None) -> str:
    moment = as_datetime(value)
    return moment.isoformat() if moment else ""


@pages.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def running_time_s(started: str | datetime | None, finished: str | datetime | None) -> float | None:
    start = as_datetime(started)
    if start is None:
        return None
    end = as_datetime(finished) or datetime.now(UTC)
    return max(0.0, (end - start).total_seconds())


@pages.app_template_filter("status_label")
def status_label(status: str) -> str:
    return status.replace("_", " ")


@pages.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def effective_status(run: dict[str, Any]) -> str:
    """A completed run with failed items counts as completed with warnings (seed 001's attention sign)."""
    if run["status"] == RunStatus.COMPLETED and run.get("error_count"):
        return RunStatus.COMPLETED_WITH_WARNINGS.value
    return str(run["status"])


def is_final(status: str) -> bool:
    return status in FINAL


def is_retryable(status: str) -> bool:
    return status in RETRYABLE_BY_HAND


@pages.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "icons": ICONS,
        "icon_groups": ICON_GROUPS,
        "statuses": [s.value for s in RunStatus],
        "is_final": is_final,
        "is_retryable": is_retryable,
        "running_time_s": running_time_s,
        "live_refresh_ms": LIVE_REFRESH_MS,
        "input_kind": input_kind,
    }
