"""Encryption of secret job parameters (Fernet under a key derived from JOBYARD_SECRET_KEY)."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_MARKER = "$secret"
MASK = "•••"


class SecretKeyMissing(RuntimeError):
    pass


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise SecretKeyMissing("JOBYARD_SECRET_KEY must be set to use secret parameters")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"jobyard-params-v1").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(secret_key: str, value: Any) -> dict[str, str]:
    """Wraps a secret value so that only a holder of the key can read it."""

    token = _fernet(secret_key).encrypt(json.dumps(value).encode())
    return {SECRET_MARKER: token.decode()}


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SECRET_MARKER}


def unseal(secret_key: str, sealed: dict[str, str]) -> Any:

    try:
        return json.loads(_fernet(secret_key).decrypt(sealed[SECRET_MARKER].encode()))
    except InvalidToken:
        raise ValueError("a secret parameter cannot be decrypted with the current JOBYARD_SECRET_KEY") from None


def masked(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters fit for display: sealed values become a mask."""
    return {k: (MASK if is_sealed(v) else v) for k, v in params.items()}
