"""CSV files uploaded for Bulk import, kept in SQL (``identity_uploads``) so that any worker host reads them.

A file may carry credentials (the ``credential`` column of self-credentialed identities), so its content is
stored Fernet-encrypted under the vault keys, and Bulk import discards it once a real (not dry) run has
imported it. An upload that no real run imported (a dry run's, a failed run's, one never imported) is kept
IDENTITY_UPLOAD_RETENTION_S at most: `store` prunes older ones in its own transaction, and `read` refuses an
expired one not pruned yet, as if it were gone. Change Vault Key does not re-encrypt uploads: they live days at
most, and a retired key stays in the ring until the operator drops it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select

from core import crypto, defaults
from core.db import utcnow
from jobs.catalog.identity.models import uploads_table


class BadUpload(ValueError):
    """An upload refused before anything is stored; the message says why."""


class UploadNotFound(LookupError):
    def __init__(self, upload_id: int) -> None:
        super().__init__(f"no upload {upload_id}")
        self.upload_id = upload_id


def _oldest_kept() -> datetime:
    return utcnow() - timedelta(seconds=defaults.IDENTITY_UPLOAD_RETENTION_S)


def store(engine: Engine, filename: str, data: bytes, by: str) -> int:
    """Stores an uploaded CSV file and returns its id. Refuses an empty, oversized or non-UTF-8 file."""
    if not data.strip():
        raise BadUpload("the file is empty")
    if len(data) > defaults.BULK_IMPORT_MAX_BYTES:
        raise BadUpload(f"the file is larger than {defaults.BULK_IMPORT_MAX_BYTES} bytes")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadUpload(f"the file is not UTF-8 text (byte {exc.start})") from None
    if "\x00" in content:
        raise BadUpload("the file contains a NUL character")
    name = (filename or "upload.csv").replace("\\", "/").rsplit("/", 1)[-1][:255] or "upload.csv"
    sealed = crypto.encrypt(crypto.secret_key_of(engine), content)
    with engine.begin() as conn:
        conn.execute(delete(uploads_table).where(uploads_table.c.uploaded_at < _oldest_kept()))
        return int(
            conn.execute(
                insert(uploads_table)
                .values(
                    filename=name, content=sealed, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                    uploaded_by=by, uploaded_at=utcnow(),
                )
                .returning(uploads_table.c.id)
            ).scalar_one()
        )  # fmt: skip


def read(engine: Engine, upload_id: int) -> tuple[str, str]:
    """(filename, content) of an upload; UploadNotFound if there is none or it is older than the retention."""
    u = uploads_table.c
    with engine.connect() as conn:
        row = conn.execute(
            select(u.filename, u.content).where(u.id == upload_id, u.uploaded_at >= _oldest_kept())
        ).first()
    if row is None:
        raise UploadNotFound(upload_id)
    return str(row.filename), crypto.decrypt(crypto.secret_key_of(engine), row.content)


def discard(engine: Engine, upload_id: int) -> bool:
    with engine.begin() as conn:
        return bool(conn.execute(delete(uploads_table).where(uploads_table.c.id == upload_id)).rowcount)
