"""HMAC-SHA256 under keys derived from the server key, one key per purpose.

A key per purpose (`derive_key(secret_key, "records")`, `"archive"` …) so that a MAC made for one use can
never be replayed as valid for another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(secret_key: str, purpose: str) -> bytes:
    if not secret_key:
        raise ValueError("JOBYARD_SECRET_KEY must be set to sign or verify records")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"jobyard-hmac-{purpose}-v1".encode()).derive(
        secret_key.encode()
    )


def sign(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def verify(key: bytes, data: bytes, mac: str | None) -> bool:
    return mac is not None and hmac.compare_digest(sign(key, data), mac)


# What each signed table's HMAC covers. A run is signed once settled, so its bookkeeping columns that
# still move afterwards (progress, dispatch times, notify list) are left out; attempts and audit entries
# are covered whole.
SIGNED_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": (
        "id", "type", "queue", "status", "params", "domain", "triggered_by", "created_at", "started_at",
        "finished_at", "attempt_count", "series", "max_attempts", "result", "error", "retried_by", "retried_at",
        "cancel_requested_by", "schedule_id", "idempotency_key",
    ),
    "run_attempts": (
        "id", "run_id", "series", "number", "worker", "started_at", "finished_at", "outcome", "error_class",
        "error_message", "traceback",
    ),
    "audit_log": ("id", "at", "actor", "action", "target", "detail", "remote_addr"),
}  # fmt: skip
RECORDS = "records"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a signed record holds a naive datetime")
        # One spelling on every database: UTC, always with microseconds.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def canonical(table: str, row: Mapping[Any, Any]) -> bytes:
    """The bytes a row's HMAC covers: its table's name, then its signed columns as JSON with sorted keys.

    The table's name is part of it so that a MAC can never be moved to a row of another table."""
    content = {column: _plain(row[column]) for column in SIGNED_COLUMNS[table]}
    body = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{table}\n{body}".encode()


def sign_row(key: bytes, table: str, row: Mapping[Any, Any]) -> str:
    return sign(key, canonical(table, row))


@lru_cache(maxsize=8)
def records_key(secret_key: str) -> bytes:
    """The key of run, attempt and audit HMACs."""
    return derive_key(secret_key, RECORDS)
