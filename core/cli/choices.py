"""The fixed choices that commands' options offer, copied from where they are declared.

A command's `--help` lists them, and importing their homes (jobs.status, dashboard.auth.roles, the identity
catalog) would import the jobs package, SQLAlchemy and the dashboard before the help could answer.
tests/unit/test_cli_commands.py holds each equal to its source.
"""

from __future__ import annotations

# jobs.status.RunStatus
RUN_STATUSES = (
    "scheduled",
    "pending",
    "waiting",
    "running",
    "retrying",
    "completed",
    "completed_with_warnings",
    "failed",
    "cancelled",
)
# dashboard.auth.roles.Role
ROLES = ("admin", "domain_admin", "operator", "viewer")
# jobs.catalog.identity.models.TARGET_ROLES
TARGET_ROLES = ("domain", "idp")
# jobs.catalog.identity.identities.IDENTITY_TYPES
IDENTITY_TYPES = (
    "human_interactive",
    "shared_managed",
    "shared_external",
    "service_account",
    "api_key",
    "oauth_client",
)
# dashboard.identity_operations.DISPLAY_STATUSES and MAX_PAGE_SIZE
IDENTITY_DISPLAY_STATUSES = ("provisioned", "pending", "retrying", "failed", "disabled")
IDENTITY_PAGE_SIZE = 500
