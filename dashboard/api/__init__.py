"""The JSON API for services (`/api/v1`), described by the OpenAPI document it serves.

Routes come from the route table (dashboard/api/routes.py), which the view modules fill in as they are
imported; the same table produces the document (GET /api/v1/openapi.json).
"""

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

from dashboard.api import (  # noqa: F401  (declare the operations)
    identities,
    job_types,
    openapi,
    run_actions,
    runs,
    schedules,
    targets,
)
from dashboard.api.errors import register_error_handlers
from dashboard.api.routes import CONVERTERS, OPERATIONS, dispatcher

api_v1 = Blueprint("api_v1", __name__)


def _add_converters(state: BlueprintSetupState) -> None:
    for name, converter in CONVERTERS.items():
        state.app.url_map.converters.setdefault(name, converter)


# Before the rules, which need their converters when they are added to the app's map.
api_v1.record_once(_add_converters)
for _op in OPERATIONS:
    # No automatic OPTIONS: there is no CORS here, and every answer under /api is JSON.
    api_v1.add_url_rule(
        _op.rule,
        endpoint=_op.operation_id,
        view_func=dispatcher(_op),
        methods=[_op.method],
        provide_automatic_options=False,
    )
register_error_handlers(api_v1)
