"""The secret vault (table ``vault_secrets``): named secrets encrypted with MultiFernet.

- ``vault_secrets``  one row per secret name (a SCIM target's token, a generated credential): the current
                     ciphertext and its version, and the previous version's ciphertext, kept until the
                     target confirms the new one (credential rotation).

The keys are the installation's (core/crypto.py: `JOBYARD_VAULT_KEYS`, then the key derived from
`JOBYARD_SECRET_KEY`), found from the engine. Values never leave this module except through `get` and
`get_previous`; nothing here logs one, and `masked` is what a page or a report shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Engine, Integer, String, Table, Text, insert, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Mapped, mapped_column

from core import crypto
from core.db import Base, UTCDateTime, utcnow


class VaultSecret(Base):
    __tablename__ = "vault_secrets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[str] = mapped_column(Text)
    previous_ciphertext: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


vault_secrets_table = cast(Table, VaultSecret.__table__)


MAX_NAME = 200


class SecretNotFound(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no secret named {self.name!r} in the vault"


class BadSecret(ValueError):
    """A name or value the vault refuses; the message names the field, never the value."""


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadSecret(f"name: must be 1 to {MAX_NAME} characters")
    return name


def masked(value: str) -> str:
    """A secret fit for display."""
    return crypto.masked_secret(value)


def put(engine: Engine, name: str, value: str, by: str, *, conn: Connection | None = None) -> int:
    """Stores a new version of secret `name`; the version it replaces is kept as the previous one until
    `confirm`. Returns the new version number. With `conn`, the write joins that connection's transaction
    (a caller storing a secret together with the row that names it)."""
    _check_name(name)
    if not isinstance(value, str) or not value:
        raise BadSecret("value: must be a non-empty string")
    ciphertext = crypto.encrypt(crypto.secret_key_of(engine), value)
    if conn is not None:
        return _put(conn, name, ciphertext, by)
    with engine.begin() as own:
        return _put(own, name, ciphertext, by)


def _put(conn: Connection, name: str, ciphertext: str, by: str) -> int:
    now = utcnow()
    v = vault_secrets_table.c
    current = conn.execute(select(v.version, v.ciphertext).where(v.name == name).with_for_update()).first()
    if current is None:
        conn.execute(
            insert(vault_secrets_table).values(
                name=name, version=1, ciphertext=ciphertext, previous_ciphertext=None, created_at=now,
                updated_at=now, updated_by=by, confirmed_at=None,
            )
        )  # fmt: skip
        return 1
    conn.execute(
        update(vault_secrets_table)
        .where(v.name == name)
        .values(
            version=current.version + 1, ciphertext=ciphertext, previous_ciphertext=current.ciphertext,
            updated_at=now, updated_by=by, confirmed_at=None,
        )
    )  # fmt: skip
    return int(current.version) + 1


def _row(engine: Engine, name: str) -> VaultSecret:
    with engine.connect() as conn:
        row = conn.execute(select(vault_secrets_table).where(vault_secrets_table.c.name == name)).first()
    if row is None:
        raise SecretNotFound(name)
    return VaultSecret(**row._mapping)


def get(engine: Engine, name: str) -> str:
    return crypto.decrypt(crypto.secret_key_of(engine), _row(engine, name).ciphertext)


def get_previous(engine: Engine, name: str) -> str | None:
    """The version before the current one, until `confirm` drops it."""
    previous = _row(engine, name).previous_ciphertext
    return None if previous is None else crypto.decrypt(crypto.secret_key_of(engine), previous)


def version(engine: Engine, name: str) -> int:
    return _row(engine, name).version


def is_confirmed(engine: Engine, name: str) -> bool:
    """Whether the current version was confirmed (`confirm`) since it was stored. A version stored and never
    confirmed may already work where it is used, or may not: a rotation that failed in between sends it again
    rather than drop the previous version by storing yet another one."""
    return _row(engine, name).confirmed_at is not None


def confirm(engine: Engine, name: str, *, conn: Connection | None = None) -> None:
    """The current version works where it is used: the previous one is dropped. With `conn`, joins its
    transaction."""
    v = vault_secrets_table.c
    statement = (
        update(vault_secrets_table).where(v.name == name).values(previous_ciphertext=None, confirmed_at=utcnow())
    )
    if conn is not None:
        done = conn.execute(statement).rowcount
    else:
        with engine.begin() as own:
            done = own.execute(statement).rowcount
    if not done:
        raise SecretNotFound(name)


def delete(engine: Engine, name: str) -> bool:
    """Removes a secret and its previous version; False when there was none."""
    with engine.begin() as conn:
        return bool(conn.execute(sql_delete(vault_secrets_table).where(vault_secrets_table.c.name == name)).rowcount)


def names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(vault_secrets_table.c.name).order_by(vault_secrets_table.c.name)).scalars())


@dataclass
class Rekeyed:
    """What one pass of `reencrypt` did: secrets re-encrypted, unreadable ones (by name), rows skipped
    because they changed while being read (the next pass takes them)."""

    rekeyed: int = 0
    unreadable: list[str] = field(default_factory=list)
    raced: int = 0


def reencrypt(engine: Engine, *, after: str | None, limit: int, found: Rekeyed) -> str | None:
    """Re-encrypts up to `limit` secrets (current and previous version) named after `after` under the
    newest key; returns the last name seen, None when there are no more. Values never leave the pass."""
    secret_key = crypto.secret_key_of(engine)
    v = vault_secrets_table.c
    query = select(v.name, v.ciphertext, v.previous_ciphertext).order_by(v.name).limit(limit)
    if after is not None:
        query = query.where(v.name > after)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return None
    with engine.begin() as conn:
        for row in rows:
            tokens = [row.ciphertext, row.previous_ciphertext]
            if all(t is None or crypto.is_current(secret_key, t) for t in tokens):
                continue
            try:
                current, previous = (None if t is None else crypto.reencrypt(secret_key, t) for t in tokens)
            except ValueError:
                found.unreadable.append(row.name)
                continue
            same_previous = (
                v.previous_ciphertext.is_(None)
                if row.previous_ciphertext is None
                else v.previous_ciphertext == row.previous_ciphertext
            )
            done = conn.execute(
                update(vault_secrets_table)
                .where(v.name == row.name, v.ciphertext == row.ciphertext, same_previous)
                .values(ciphertext=current, previous_ciphertext=previous)
            ).rowcount
            if done:
                found.rekeyed += 1
            else:
                found.raced += 1
    return str(rows[-1].name)
