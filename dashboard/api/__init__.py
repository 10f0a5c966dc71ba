"""The JSON API for services (`/api/v1`), described by the OpenAPI document it serves."""

from flask import Blueprint

api_v1 = Blueprint("api_v1", __name__)
