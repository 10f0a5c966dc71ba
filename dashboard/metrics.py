"""Prometheus metrics at `/metrics` (placeholder)."""

from flask import Blueprint

metrics_blueprint = Blueprint("metrics", __name__)
