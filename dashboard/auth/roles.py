"""Roles and what each may see and do.

- ``admin``         everything, including users, tokens and rq-dashboard.
- ``domain_admin``  the runs, job types and schedules of their domain; may act on all of them.
- ``operator``      the runs they triggered, plus the job types granted to them: may start those types,
                    and retry, cancel or re-run their own runs.
- ``viewer``        read-only; limited to one domain when the account has one.

A `Principal` is whoever makes a request: a logged-in user or an API token. Scoping is expressed both as
a SQL condition (for lists) and as a check on one row (for detail pages and actions); a run outside the
principal's view is reported as not found, so its existence is not revealed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, false, true

from jobs.models import runs_table as runs

if TYPE_CHECKING:
    from jobs.registry import JobType


class Role(StrEnum):
    ADMIN = "admin"
    DOMAIN_ADMIN = "domain_admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


# How far a role reaches, for "a token may not reach beyond its owner".
ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.DOMAIN_ADMIN: 2, Role.ADMIN: 3}


class RoleError(ValueError):
    pass


def parse_role(value: str, domain: str | None) -> Role:
    try:
        role = Role(value)
    except ValueError:
        raise RoleError(f"unknown role {value!r}; one of {', '.join(r.value for r in Role)}") from None
    if role is Role.DOMAIN_ADMIN and not domain:
        raise RoleError("a domain_admin needs a domain")
    return role


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    domain: str | None = None
    granted_types: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None
    user_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def read_only(self) -> bool:
        return self.role is Role.VIEWER

    @property
    def limited_to_domain(self) -> bool:
        """A domain admin, or a viewer with a domain: what belongs to no domain (identities) is not theirs."""
        return self.role is Role.DOMAIN_ADMIN or (self.role is Role.VIEWER and self.domain is not None)

    # Job types

    def sees_type(self, declared: JobType) -> bool:
        match self.role:
            case Role.ADMIN:
                return True
            case Role.DOMAIN_ADMIN:
                return declared.domain == self.domain
            case Role.OPERATOR:
                return declared.name in self.granted_types
            case Role.VIEWER:
                return self.domain is None or declared.domain == self.domain

    def may_start(self, declared: JobType) -> bool:
        return not self.read_only and self.sees_type(declared)

    def may_configure(self, declared: JobType) -> bool:
        """Change a type's schedule: admins, and domain admins for their domain's types."""
        return self.role in (Role.ADMIN, Role.DOMAIN_ADMIN) and self.sees_type(declared)

    # Runs

    def run_scope(self) -> ColumnElement[bool]:
        """The SQL condition selecting the runs this principal may see."""
        match self.role:
            case Role.ADMIN:
                return true()
            case Role.DOMAIN_ADMIN:
                return runs.c.domain == self.domain
            case Role.OPERATOR:
                return runs.c.triggered_by == self.name
            case Role.VIEWER:
                return true() if self.domain is None else runs.c.domain == self.domain
        return false()  # pragma: no cover - every role is matched above

    def sees_run(self, run: Any) -> bool:
        """`run` is any row or mapping with `domain` and `triggered_by`."""
        match self.role:
            case Role.ADMIN:
                return True
            case Role.DOMAIN_ADMIN:
                return bool(run.domain == self.domain)
            case Role.OPERATOR:
                return bool(run.triggered_by == self.name)
            case Role.VIEWER:
                return self.domain is None or run.domain == self.domain

    def may_act_on_run(self, run: Any) -> bool:
        """Retry, cancel, run again."""
        return not self.read_only and self.sees_run(run)
