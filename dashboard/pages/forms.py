"""Reading form fields into what the service layer takes: job parameters, triggers, times, addresses.

Parameters arrive as text and are converted by `validate_params(..., from_text=True)`, which names every
bad field; a blank field means "not given" (the declared default applies, or "is required").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobs.params import InvalidJobRequest
from jobs.registry import JobType, Param
from jobs.run_search import BadFilter
from scheduler import triggers
from scheduler.triggers import Trigger, TriggerError

PARAM_PREFIX = "param."
ADDRESS_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass
class FormProblems:
    """What went wrong with a submitted form: messages per field, shown inline and flashed."""

    fields: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, message)

    def add_request_errors(self, error: InvalidJobRequest) -> None:
        for problem in error.errors:
            self.add(problem.field, problem.problem)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def summary(self) -> str:
        return "; ".join(f"{name}: {message}" for name, message in self.fields.items())


def param_text(param: Param, value: Any) -> str:
    """A stored parameter value as the text its input shows."""
    if value is None:
        return ""
    if param.type is bool:
        return "true" if value else "false"
    if param.type in (list, dict):
        return json.dumps(value)
    return str(value)


def input_kind(param: Param) -> str:
    """Which input a parameter gets: secret, bool, int, float, json or text."""
    if param.secret:
        return "secret"
    kinds = {bool: "bool", int: "int", float: "float", list: "json", dict: "json"}
    return kinds.get(param.type, "text")


def default_texts(declared: JobType) -> dict[str, str]:
    return {p.name: param_text(p, p.default) for p in declared.params if p.has_default}


def params_from_form(
    declared: JobType, form: Mapping[str, str], *, prefix: str = "", keep: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The parameters typed into a form, as text. A blank secret keeps the value in `keep` (an edit form
    never shows a stored secret, so leaving it blank must not erase it)."""
    raw: dict[str, Any] = {}
    for param in declared.params:
        text = form.get(prefix + param.name, "")
        if text == "":
            if param.secret and keep is not None and param.name in keep:
                raw[param.name] = keep[param.name]
            continue
        raw[param.name] = text
    return raw


def form_texts(declared: JobType, form: Mapping[str, str], *, prefix: str = "") -> dict[str, str]:
    """What the user typed, to refill the form after an error (secrets are never echoed back)."""
    return {p.name: form.get(prefix + p.name, "") for p in declared.params if not p.secret}


def trigger_from_form(form: Mapping[str, str], problems: FormProblems) -> Trigger | None:
    kind = form.get("trigger_kind", "").strip()
    value = form.get("trigger_value", "").strip()
    timezone = form.get("trigger_timezone", "").strip() or "UTC"
    if kind not in triggers.KINDS:
        problems.add("trigger_kind", f"choose one of {', '.join(triggers.KINDS)}")
        return None
    if not value:
        problems.add("trigger_value", f"a {kind} trigger needs a value")
        return None
    try:
        return triggers.build(kind, value, timezone)
    except TriggerError as exc:
        problems.add("trigger_timezone" if "timezone" in str(exc) else "trigger_value", str(exc))
        return None


def addresses_from_text(text: str) -> list[str]:
    return [a for a in ADDRESS_SEPARATORS.split(text) if a]


def utc_from_input(field_name: str, text: str) -> datetime | None:
    """A `datetime-local` input (no zone: read as UTC) or a full ISO 8601 time."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadFilter(field_name, f"expected a date and time like 2025-01-31T14:30, got {text[:40]!r}") from None
