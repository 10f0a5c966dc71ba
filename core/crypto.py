"""The installation's encryption keys: secret job parameters and vault secrets, under MultiFernet.

The keyring of an installation is `JOBYARD_VAULT_KEYS` (Fernet keys, newest first) followed by the key
derived from `JOBYARD_SECRET_KEY` (HKDF, info "jobyard-params-v1"). Encryption uses the first key,
decryption tries every one, so that values sealed before the vault keys were configured, or before the
newest key was added, stay readable until the "Change Vault Key" job re-encrypts them.

The public functions take the secret key, as their callers always have it at hand; the vault keys that
go with it are registered when `Settings` are built (`register_vault_keys`), and the secret key of the
installation whose database an engine reaches likewise (`register_installation`), for code that only
holds an engine (the vault, the audit trail). One process serves one installation; the latest
registration wins.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

SECRET_MARKER = "$secret"
MASK = "•••"

_VAULT_KEYS: dict[str, tuple[str, ...]] = {}
_SECRET_OF_DATABASE: dict[str, str] = {}


class SecretKeyMissing(RuntimeError):
    pass


class BadVaultKey(ValueError):
    """A configured vault key is not a Fernet key; the message names its position, never its text."""


def parse_vault_keys(text: str) -> tuple[str, ...]:
    """`JOBYARD_VAULT_KEYS`: comma-separated url-safe base64 Fernet keys (32 bytes each), newest first."""
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, binascii.Error):
            raise BadVaultKey(
                f"key {position} of {len(keys)} is not a Fernet key (32 bytes in url-safe base64, "
                "as `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
                "prints)"
            ) from None
    if len(set(keys)) != len(keys):
        raise BadVaultKey("a key is listed twice")
    return keys


def register_vault_keys(secret_key: str, vault_keys: Iterable[str]) -> None:
    _VAULT_KEYS[secret_key] = tuple(vault_keys)


def register_installation(database_url: str, secret_key: str) -> None:
    _SECRET_OF_DATABASE[_normal_url(database_url)] = secret_key


def secret_key_of(engine: Engine) -> str:
    """The secret key of the installation whose database `engine` reaches."""
    secret_key = _SECRET_OF_DATABASE.get(_normal_url(engine.url.render_as_string(hide_password=False)), "")
    if not secret_key:
        raise SecretKeyMissing("JOBYARD_SECRET_KEY must be set to use the vault or sign records")
    return secret_key


def _normal_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=False)


def legacy_key(secret_key: str) -> Fernet:
    """The key secret parameters were sealed with before vault keys existed; always the last in the ring."""
    if not secret_key:
        raise SecretKeyMissing("JOBYARD_SECRET_KEY must be set to use secret parameters")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"jobyard-params-v1").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=16)
def _ring(secret_key: str, vault_keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet]:
    fernets = [Fernet(k.encode()) for k in vault_keys] + [legacy_key(secret_key)]
    return MultiFernet(fernets), fernets[0]


def keyring(secret_key: str) -> MultiFernet:
    return _ring(secret_key, _VAULT_KEYS.get(secret_key, ()))[0]


def newest_key(secret_key: str) -> Fernet:
    return _ring(secret_key, _VAULT_KEYS.get(secret_key, ()))[1]


def encrypt(secret_key: str, plaintext: str) -> str:
    return keyring(secret_key).encrypt(plaintext.encode()).decode()


def decrypt(secret_key: str, token: str) -> str:
    try:
        return keyring(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("a secret cannot be decrypted with the configured vault keys") from None


def is_current(secret_key: str, token: str) -> bool:
    """Whether `token` is encrypted under the newest key (then re-encrypting it would change nothing)."""
    try:
        newest_key(secret_key).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(secret_key: str, token: str) -> str:
    """`token` under the newest key; a token it cannot read raises ValueError."""
    try:
        return keyring(secret_key).rotate(token.encode()).decode()
    except InvalidToken:
        raise ValueError("a secret cannot be decrypted with the configured vault keys") from None


def seal(secret_key: str, value: Any) -> dict[str, str]:
    """Wraps a secret value so that only a holder of the key can read it."""
    return {SECRET_MARKER: encrypt(secret_key, json.dumps(value))}


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SECRET_MARKER}


def unseal(secret_key: str, sealed: dict[str, str]) -> Any:
    try:
        return json.loads(keyring(secret_key).decrypt(sealed[SECRET_MARKER].encode()))
    except InvalidToken:
        raise ValueError(
            "a secret parameter cannot be decrypted with the current JOBYARD_SECRET_KEY and JOBYARD_VAULT_KEYS"
        ) from None


def masked(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters fit for display: sealed values become a mask."""
    return {k: (MASK if is_sealed(v) else v) for k, v in params.items()}


def masked_secret(value: str) -> str:
    """A secret fit for display: its first and last characters when it is long enough to spare them."""
    return f"{value[:2]}{MASK}{value[-2:]}" if len(value) >= 16 else MASK
