"""The `pages` blueprint (placeholder views; the real pages land in their own modules)."""

from __future__ import annotations

from flask import Blueprint

pages = Blueprint("pages", __name__)


@pages.get("/")
def job_types() -> str:
    return "job types"


@pages.get("/runs")
def runs() -> str:
    return "runs"


@pages.get("/schedules")
def schedules() -> str:
    return "schedules"


@pages.get("/audit")
def audit() -> str:
    return "audit"


@pages.get("/admin/users")
def users() -> str:
    return "users"
