"""Validating enqueue requests. One error names every bad field, and nothing is stored."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core import crypto
from core.settings import ServerDirs
from jobs.paths import PathRefused, confine
from jobs.registry import JobType, Registry


@dataclass(frozen=True)
class FieldError:
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class InvalidJobRequest(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid job request: " + "; ".join(str(e) for e in errors))

    def as_dict(self) -> list[dict[str, str]]:
        return [{"field": e.field, "problem": e.problem} for e in self.errors]


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "an object",
}


def _coerce_text(raw: str, wanted: type) -> Any:
    """Turns a command-line `key=value` string into the declared type."""
    if wanted is str:
        return raw
    if wanted is bool:
        lowered = raw.lower()
        if lowered in {"true", "yes", "1", "on"}:
            return True
        if lowered in {"false", "no", "0", "off"}:
            return False
        raise ValueError
    if wanted is int:
        return int(raw)
    if wanted is float:
        number = float(raw)
        if not math.isfinite(number):  # JSON has no NaN or infinity; PostgreSQL refuses to store them
            raise ValueError(raw)
        return number
    value = json.loads(raw)
    if not isinstance(value, wanted):
        raise ValueError
    return value


def _matches(value: Any, wanted: type) -> bool:
    # bool is an int in Python, but `times=true` is a mistake, not a number.
    if isinstance(value, bool) and wanted is not bool:
        return False
    if wanted is float:
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    return isinstance(value, wanted)


def resolve_type(registry: Registry, name: str) -> JobType:
    declared = registry.get(name)
    if declared is None:
        raise InvalidJobRequest([FieldError("type", f"unknown job type {name!r}")])
    return declared


def validate_params(
    declared: JobType, raw: Mapping[str, Any] | None, *, dirs: ServerDirs, from_text: bool = False
) -> dict[str, Any]:
    """Returns the full parameter set (defaults filled in) or raises naming every bad field.

    `dirs` (Settings.server_dirs) bound every server path parameter, the import or the export directories as it
    declares; it is required so that no caller can forget them."""
    raw = dict(raw or {})
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}
    for param in declared.params:
        if param.name not in raw:
            if param.is_required:
                errors.append(FieldError(param.name, "is required"))
            elif param.has_default:
                clean[param.name] = param.default
            continue
        value = raw.pop(param.name)
        if from_text and isinstance(value, str):
            try:
                value = _coerce_text(value, param.type)
            except ValueError:
                errors.append(FieldError(param.name, f"must be {_TYPE_NAMES[param.type]}, got {value!r}"))
                continue
        if not _matches(value, param.type):
            errors.append(FieldError(param.name, f"must be {_TYPE_NAMES[param.type]}, got {type(value).__name__}"))
            continue
        if param.minimum is not None and value < param.minimum:
            errors.append(FieldError(param.name, f"must be at least {param.minimum:g}, got {value}"))
            continue
        if param.maximum is not None and value > param.maximum:
            errors.append(FieldError(param.name, f"must be at most {param.maximum:g}, got {value}"))
            continue
        if param.server_path is not None:
            try:
                confine(param.name, value, dirs.of(param.server_path), param.server_path)
            except PathRefused as exc:
                errors.append(FieldError(param.name, exc.problem))
                continue
        clean[param.name] = float(value) if param.type is float else value
    errors.extend(FieldError(name, "is not a parameter of this job type") for name in sorted(raw))
    if errors:
        raise InvalidJobRequest(errors)
    return clean


def seal_secrets(declared: JobType, params: dict[str, Any], secret_key: str) -> dict[str, Any]:
    """Encrypts secret parameters before they leave the producer."""
    return {
        name: crypto.seal(secret_key, value) if (p := declared.param(name)) is not None and p.secret else value
        for name, value in params.items()
    }


def unseal_secrets(params: Mapping[str, Any], secret_key: str) -> dict[str, Any]:
    return {k: crypto.unseal(secret_key, v) if crypto.is_sealed(v) else v for k, v in params.items()}
