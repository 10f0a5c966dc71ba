"""The JSON schemas of identities, their imports and SCIM targets, added to the document's COMPONENTS.

Like the others (dashboard/api/schemas.py), request schemas are what the server checks and response schemas are
closed. No response schema has a place for a credential or a token: an identity says whether it holds a
credential (`has_credential`), a target shows its token masked (`token_masked`).
"""

from __future__ import annotations

from typing import Any

from dashboard.api.schemas import COMPONENTS, INSTANT, TEXT, nullable, obj, ref
from dashboard.identity_operations import DISPLAY_STATUSES
from jobs.catalog.identity.identities import IDENTITY_TYPES, MAX_CREDENTIAL, MAX_PLATFORM, MAX_TEXT
from jobs.catalog.identity.models import TARGET_ROLES

DISPLAY_STATUS = {"type": "string", "enum": list(DISPLAY_STATUSES)}
IDENTITY_TYPE = {"type": "string", "enum": list(IDENTITY_TYPES)}
FLAG = {"type": "string", "enum": ["true", "false"], "default": "false"}
TIME = {"type": "string", "format": "date-time"}


def _optional_text(max_length: int, description: str = "") -> dict[str, Any]:
    return nullable("string", maxLength=max_length, **({"description": description} if description else {}))


IDENTITY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "user_name": {"type": "string"},
    "display_name": TEXT,
    "email": TEXT,
    "identity_type": IDENTITY_TYPE,
    "platform": TEXT,
    "department": TEXT,
    "title": TEXT,
    "status": {"type": "string", "description": "as stored: `pending` until every operation is done"},
    "display_status": {**DISPLAY_STATUS, "description": "what the dashboard shows (failed, retrying from the runs)"},
    "disabled": {"type": "boolean"},
    "source": {"type": "string", "description": "manual, bulk or directory:<source>"},
    "has_credential": {"type": "boolean", "description": "a credential is kept in the vault (never shown)"},
    "password_expires_at": INSTANT,
    "created_at": TIME,
    "created_by": {"type": "string"},
    "updated_at": TIME,
    "provisioned_at": INSTANT,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "NewIdentity": obj(
        {
            "user_name": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
            "identity_type": IDENTITY_TYPE,
            "display_name": _optional_text(MAX_TEXT),
            "email": _optional_text(320),
            "platform": _optional_text(MAX_PLATFORM, "a domain target's name (the domain user is made there)"),
            "department": _optional_text(MAX_TEXT),
            "title": _optional_text(MAX_TEXT),
            "credential": _optional_text(
                MAX_CREDENTIAL, "self-credentialed types only: kept in the vault, never shown again"
            ),
            "idp_target": _optional_text(MAX_TEXT, "the identity provider target, when there are several"),
        },
        required=("user_name", "identity_type"),
    ),
    "Identity": obj(IDENTITY_PROPERTIES),
    "ProvisioningOperation": obj(
        {
            "operation": {"type": "string"},
            "target": {"type": "string"},
            "remote_id": TEXT,
            "done_at": INSTANT,
            "last_error": TEXT,
            "run_id": TEXT,
            "run_status": nullable("string", description="the status of the run doing it"),
        }
    ),
    "IdentityDetail": obj(
        {**IDENTITY_PROPERTIES, "operations": {"type": "array", "items": ref("ProvisioningOperation")}}
    ),
    "IdentityPage": obj(
        {
            "identities": {"type": "array", "items": ref("Identity")},
            "next_cursor": nullable("integer", description="pass as `cursor` for the next page; null on the last"),
        }
    ),
    "ImportStarted": obj(
        {
            "run_id": {"type": "string"},
            "upload_id": {"type": "integer"},
            "dry_run": {"type": "boolean"},
            "continue_on_error": {"type": "boolean"},
            "url": {"type": "string", "description": "the run in this API"},
            "page_url": {"type": "string", "description": "the run in the dashboard"},
        }
    ),
    "PutTarget": obj(
        {
            "role": {"type": "string", "enum": list(TARGET_ROLES)},
            "base_url": {"type": "string", "minLength": 1, "maxLength": 1000},
            "token": nullable(
                "string",
                minLength=1,
                maxLength=4096,
                description="the bearer token; required for a new target, left out or null to keep the stored one",
            ),
        },
        required=("role", "base_url"),
    ),
    "Target": obj(
        {
            "name": {"type": "string"},
            "role": {"type": "string", "enum": list(TARGET_ROLES)},
            "base_url": {"type": "string"},
            "token_masked": {"type": "string", "description": "never the token itself"},
        }
    ),
    "TargetList": obj({"targets": {"type": "array", "items": ref("Target")}}),
    "TargetDeleted": obj({"name": {"type": "string"}, "deleted": {"type": "boolean", "const": True}}),
}
COMPONENTS.update(SCHEMAS)
