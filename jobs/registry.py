"""Declaring job types. Only a declared type can ever execute.

@job_type("identity.create_user", title="Create domain user",
          params=[Param("email", str), Param("token", str, secret=True)])
def create_user(ctx: JobContext, email: str, token: str) -> dict: ...
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import defaults
from core.settings import ServerPath
from jobs.retry import RetryPolicy
from scheduler.triggers import Trigger

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
PARAM_TYPES: tuple[type, ...] = (str, int, float, bool, list, dict)
BUILTIN_MODULES = (
    "jobs.catalog.demo", "jobs.catalog.maintenance", "jobs.catalog.certificates", "jobs.catalog.archive",
    "jobs.catalog.archive_import", "jobs.catalog.integrity", "jobs.catalog.vault_jobs",
    "jobs.catalog.identity.provisioning",
    "jobs.catalog.identity.credentials", "jobs.catalog.identity.retry_provisioning",
    "jobs.catalog.identity.password_expiry",
    "jobs.catalog.identity.directory_sync", "jobs.catalog.identity.jml", "jobs.catalog.identity.bulk_import",
)  # fmt: skip

_MISSING: Any = object()


class DeclarationError(ValueError):
    """A job type declaration is inconsistent; raised at import time, never at run time."""


@dataclass(frozen=True)
class Param:
    name: str
    type: type = str
    required: bool | None = None  # None: required unless a default is given
    default: Any = _MISSING
    secret: bool = False
    help: str = ""
    # Bounds of a number, checked when the run is requested (422 in the API, exit 2 in the CLI).
    minimum: float | None = None
    maximum: float | None = None
    # A path on the worker's disk (jobs/paths.py): "import", a file or directory the job reads, allowed only inside
    # the import directories; "export", a file the job creates, allowed only inside the export directories.
    # Checked when the run is requested and again by the job right before it opens or creates the file.
    server_path: ServerPath | None = None

    @property
    def is_required(self) -> bool:
        return self.default is _MISSING if self.required is None else self.required

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def schema(self) -> dict[str, Any]:
        names = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
        out: dict[str, Any] = {"type": names[self.type], "description": self.help}
        if self.has_default and not self.secret:
            out["default"] = self.default
        if self.secret:
            out["format"] = "password"
            out["writeOnly"] = True
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.server_path is not None:
            # An annotation (JSON Schema ignores unknown keywords) for clients that offer a file to pick ("import")
            # or a name to save as ("export").
            out["x-server-path"] = self.server_path
        return out


@dataclass(frozen=True)
class JobType:
    name: str
    func: Callable[..., Any]
    title: str
    description: str = ""
    params: tuple[Param, ...] = ()
    queue: str = defaults.DEFAULT_QUEUE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: int = defaults.DEFAULT_TIMEOUT_S
    exclusive: bool = False
    # Created as an `automatic` schedule at start unless one exists; an operator's change wins.
    default_schedule: Trigger | None = None
    # "Send report" (seed 001): addresses mailed when any run of the type ends.
    report_to: tuple[str, ...] = ()
    # Seed 001's "execution by domain": a type that belongs to one domain is seen and managed by that
    # domain's administrators, and its runs carry the domain. None: an installation-wide type (admins only).
    domain: str | None = None

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {p.name: p.schema() for p in self.params},
            "required": [p.name for p in self.params if p.is_required],
            "additionalProperties": False,
        }


class Registry:
    """Job types by name. Declaring a name twice is an error, so a typo cannot shadow a real type."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def add(self, job_type: JobType) -> None:
        existing = self._types.get(job_type.name)
        if existing is not None and existing.func is not job_type.func:
            raise DeclarationError(f"job type {job_type.name!r} is declared twice")
        self._types[job_type.name] = job_type

    def get(self, name: str) -> JobType | None:
        return self._types.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[JobType]:
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._types)


REGISTRY = Registry()


def _check_signature(name: str, func: Callable[..., Any], params: Sequence[Param]) -> None:
    signature = inspect.signature(func)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    positional = list(signature.parameters)
    if not positional:
        raise DeclarationError(f"{name}: the job function must take the job context as first argument")
    for param in params:
        if param.type not in PARAM_TYPES:
            raise DeclarationError(f"{name}: parameter {param.name!r} has unsupported type {param.type!r}")
        if not accepts_any and param.name not in positional[1:]:
            raise DeclarationError(f"{name}: parameter {param.name!r} is not an argument of {func.__name__}")


def job_type(
    name: str,
    *,
    title: str,
    description: str = "",
    params: Iterable[Param] = (),
    queue: str = defaults.DEFAULT_QUEUE,
    max_attempts: int = defaults.DEFAULT_MAX_ATTEMPTS,
    backoff_base_s: float = defaults.DEFAULT_BACKOFF_BASE_S,
    backoff_max_s: float = defaults.DEFAULT_BACKOFF_MAX_S,
    timeout_s: int = defaults.DEFAULT_TIMEOUT_S,
    exclusive: bool = False,
    default_schedule: Trigger | None = None,
    report_to: Iterable[str] = (),
    domain: str | None = None,
    registry: Registry | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if not NAME_PATTERN.match(name):
        raise DeclarationError(f"job type name {name!r} must look like 'area.action' (lowercase, dotted)")
    params = tuple(params)
    if len({p.name for p in params}) != len(params):
        raise DeclarationError(f"{name}: parameter names must be unique")
    bounded = [
        p.name for p in params if (p.minimum is not None or p.maximum is not None) and p.type not in (int, float)
    ]
    if bounded:
        raise DeclarationError(f"{name}: only numbers have bounds ({', '.join(bounded)})")
    kinds = [p.name for p in params if p.server_path not in (None, "import", "export")]
    if kinds:
        raise DeclarationError(f"{name}: server_path is 'import' or 'export' ({', '.join(kinds)})")
    paths = [p.name for p in params if p.server_path is not None and (p.type is not str or p.secret)]
    if paths:
        raise DeclarationError(f"{name}: a server path is a string, and not secret ({', '.join(paths)})")
    if timeout_s < 1:
        raise DeclarationError(f"{name}: timeout_s must be at least 1")

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        _check_signature(name, func, params)
        declared = JobType(
            name=name,
            func=func,
            title=title,
            description=description or inspect.getdoc(func) or "",
            params=params,
            queue=queue,
            retry=RetryPolicy(max_attempts, backoff_base_s, backoff_max_s),
            timeout_s=timeout_s,
            exclusive=exclusive,
            default_schedule=default_schedule,
            report_to=tuple(report_to),
            domain=domain,
        )
        (registry if registry is not None else REGISTRY).add(declared)
        func.job_type = declared  # type: ignore[attr-defined]
        return func

    return register


def load_job_modules(extra: Iterable[str] = ()) -> Registry:
    """Imports the built-in catalogue and the modules named in JOBYARD_JOB_MODULES; returns the registry."""
    for module in (*BUILTIN_MODULES, *extra):
        importlib.import_module(module)
    return REGISTRY
