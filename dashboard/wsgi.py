"""WSGI entry point for gunicorn: `gunicorn 'dashboard.wsgi:build()'` (see the Procfile).

A factory rather than a module-level app, so that each gunicorn worker builds its own Jobyard (and its
own database pool and Redis client) after the fork, and importing this module opens nothing.
"""

from __future__ import annotations

from flask import Flask

from core.app import Jobyard
from dashboard.app import create_app


def build() -> Flask:
    jobyard = Jobyard.from_env().install()
    return create_app(jobyard)
