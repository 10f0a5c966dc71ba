"""The canonical form of a signed record, and the vault keyring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.fernet import Fernet

from core import crypto, integrity

WHEN = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def entry(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 7, "at": WHEN, "actor": "alice", "action": "login", "target": None, "detail": {"b": 1, "a": [1.5]},
        "remote_addr": "10.0.0.1", "hmac": "ignored",
    }  # fmt: skip
    return row | changes


def test_the_canonical_form_is_one_spelling_of_the_content() -> None:
    same_instant = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert integrity.canonical("audit_log", entry()) == integrity.canonical("audit_log", entry(at=same_instant))
    assert integrity.canonical("audit_log", entry()) == integrity.canonical("audit_log", entry(hmac=None))
    assert b'"at":"2024-05-01T12:00:00.000000+00:00"' in integrity.canonical("audit_log", entry())
    assert b'"detail":{"a":[1.5],"b":1}' in integrity.canonical("audit_log", entry())
    assert integrity.canonical("audit_log", entry()) != integrity.canonical("audit_log", entry(actor="mallory"))
    with pytest.raises(ValueError, match="naive datetime"):
        integrity.canonical("audit_log", entry(at=WHEN.replace(tzinfo=None)))


def test_a_mac_is_bound_to_its_key_and_table() -> None:
    key = integrity.records_key("k")
    mac = integrity.sign_row(key, "audit_log", entry())
    assert integrity.verify(key, integrity.canonical("audit_log", entry()), mac)
    assert not integrity.verify(integrity.records_key("other"), integrity.canonical("audit_log", entry()), mac)
    assert not integrity.verify(key, integrity.canonical("audit_log", entry(id=8)), mac)
    assert not integrity.verify(key, integrity.canonical("audit_log", entry()), None)


def test_the_keyring_encrypts_with_the_newest_key_and_reads_with_any() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    crypto.register_vault_keys("unit-secret", (old,))
    token = crypto.encrypt("unit-secret", "value")
    assert crypto.is_current("unit-secret", token)
    crypto.register_vault_keys("unit-secret", (new, old))
    assert crypto.decrypt("unit-secret", token) == "value"
    assert not crypto.is_current("unit-secret", token)
    rotated = crypto.reencrypt("unit-secret", token)
    assert crypto.is_current("unit-secret", rotated)
    crypto.register_vault_keys("unit-secret", (new,))
    assert crypto.decrypt("unit-secret", rotated) == "value"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        crypto.decrypt("unit-secret", token)
