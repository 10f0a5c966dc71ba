"""The secret vault (table ``vault_secrets``): named secrets encrypted with MultiFernet.

- ``vault_secrets``  one row per secret name (a SCIM target's token, a generated credential): the current
                     ciphertext and its version, and the previous version's ciphertext, kept until the
                     target confirms the new one (credential rotation).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime


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
