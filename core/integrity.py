"""HMAC-SHA256 under keys derived from the server key, one key per purpose.

A key per purpose (`derive_key(secret_key, "records")`, `"archive"` …) so that a MAC made for one use can
never be replayed as valid for another.
"""

from __future__ import annotations

import hashlib
import hmac

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
