"""The archive file `archive.export` writes and `archive.import` reads back.

Container: an uncompressed POSIX tar holding exactly three regular files:

- ``manifest.json``  UTF-8 JSON object::

      {"format": "jobyard-archive", "version": 1, "created_at": "<ISO 8601 UTC>",
       "exported_by_run": "<run id>", "types": [...], "older_than_days": N, "cutoff": "<ISO 8601 UTC>",
       "runs": <number of records>, "data": {"name": "runs.jsonl.gz", "bytes": <size>, "sha256": "<hex>"}}

- ``runs.jsonl.gz``  a gzip'd JSON Lines stream, one run per line::

      {"run": {every column of `runs`}, "attempts": [{every column of `run_attempts`}, ...],
       "logs": [{every column of `run_logs`}, ...], "items": [{every column of `run_items`}, ...],
       "depends_on": ["<run id>", ...]}

  Datetimes are ISO 8601 strings in UTC; secret parameters stay sealed as the record held them.
- ``manifest.hmac``  the hex HMAC-SHA256 of manifest.json's exact bytes under
  ``derive_key(secret_key, "archive")`` (core/integrity.py), then a newline.

The HMAC covers the manifest and the manifest holds the data's size and SHA-256, so one MAC binds both.
A reader checks the MAC, then the data's size and digest, before it trusts a single record; it reads the
data into a private temporary copy while hashing it, so the file cannot change between the check and
the import.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from core.integrity import sign, verify
from jobs.context import PermanentFailure

FORMAT = "jobyard-archive"
VERSION = 1
MANIFEST = "manifest.json"
DATA = "runs.jsonl.gz"
MAC = "manifest.hmac"
MEMBERS = (MANIFEST, DATA, MAC)
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few hundred bytes; anything near this is not ours
MAX_MAC_BYTES = 256
SPOOL_BYTES = 16 << 20  # smaller archives are checked in memory, bigger ones in a temporary file
CHUNK = 1 << 16


class ArchiveIntegrityError(PermanentFailure):
    """The file is not an archive this server wrote, or was changed since: nothing may be imported from it."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"the archive's integrity check failed: {problem}")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()


class ArchiveWriter:
    """Collects records gzip'd in `scratch`, a nameless file it closes (ExportTarget.scratch: a crash leaves
    nothing behind), then writes the signed tar."""

    def __init__(self, scratch: IO[bytes]) -> None:
        with ExitStack() as stack:
            self._data: IO[bytes] = stack.enter_context(scratch)
            self._gzip = stack.enter_context(gzip.GzipFile(fileobj=self._data, mode="wb", mtime=0))
            self._open = stack.pop_all()
        self.count = 0

    def add(self, record: dict[str, Any]) -> None:
        self._gzip.write(dumps(record) + b"\n")
        self.count += 1

    def finish(self, out: IO[bytes], key: bytes, header: dict[str, Any]) -> dict[str, Any]:
        """Writes the tar to `out` (open, the caller closes it) and syncs it to disk; returns the manifest."""
        self._gzip.close()
        digest, size = hashlib.sha256(), self._data.tell()
        self._data.seek(0)
        while chunk := self._data.read(CHUNK):
            digest.update(chunk)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            **header,
            "runs": self.count,
            "data": {"name": DATA, "bytes": size, "sha256": digest.hexdigest()},
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        mtime = datetime.now(UTC).timestamp()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, io.BytesIO(manifest_bytes), len(manifest_bytes), mtime)
            self._data.seek(0)
            _add(tar, DATA, self._data, size, mtime)
            mac = (sign(key, manifest_bytes) + "\n").encode()
            _add(tar, MAC, io.BytesIO(mac), len(mac), mtime)
        out.flush()
        os.fsync(out.fileno())
        self.close()
        return manifest

    def close(self) -> None:
        self._open.close()


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o600
    tar.addfile(info, data)


@dataclass
class VerifiedArchive:
    path: Path
    manifest: dict[str, Any]
    _data: IO[bytes]

    def records(self) -> Iterator[dict[str, Any]]:
        """The run records, in the order they were written; only ever from the verified copy."""
        self._data.seek(0)
        number = 0
        try:
            with gzip.GzipFile(fileobj=self._data, mode="rb") as stream:
                for number, line in enumerate(stream, start=1):
                    record = json.loads(line)
                    if not isinstance(record, dict) or not isinstance(record.get("run"), dict):
                        raise ArchiveIntegrityError(f"record {number} holds no run")
                    yield record
        except (OSError, EOFError, ValueError) as exc:  # a gzip or JSON error: signed, yet not what we write
            raise ArchiveIntegrityError(f"record {number + 1} cannot be read ({exc})") from None

    def run_ids(self) -> Iterator[str]:
        for record in self.records():
            yield str(record["run"]["id"])

    def close(self) -> None:
        self._data.close()

    def __enter__(self) -> VerifiedArchive:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise ArchiveIntegrityError(f"{member.name} is {member.size} bytes, more than an archive ever holds")
    stream = tar.extractfile(member)
    assert stream is not None  # a regular file, checked by the caller
    return stream.read()


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    found: dict[str, tarfile.TarInfo] = {}
    # Lazily, member by member: a file with millions of entries is refused at its first stranger.
    for member in tar:
        if member.name not in MEMBERS or member.name in found or not member.isfile():
            raise ArchiveIntegrityError(f"unexpected entry {member.name!r}: not a Jobyard archive")
        found[member.name] = member
    missing = [name for name in MEMBERS if name not in found]
    if missing:
        raise ArchiveIntegrityError(f"{', '.join(missing)} missing")
    return found


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise ArchiveIntegrityError("the manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveIntegrityError("the manifest is not a Jobyard archive manifest")
    if manifest.get("version") != VERSION:
        raise ArchiveIntegrityError(f"archive format version {manifest.get('version')!r} is not {VERSION}")
    data = manifest.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("sha256"), str) or not isinstance(data.get("bytes"), int):
        raise ArchiveIntegrityError("the manifest does not describe its data")
    return manifest


def _verify_into(path: Path, key: bytes, copy: IO[bytes], file: IO[bytes] | None) -> dict[str, Any]:
    """Checks the HMAC, then copies the data while hashing it; returns the manifest."""
    try:
        with tarfile.open(path, mode="r:", fileobj=file) as tar:
            members = _members(tar)
            raw_manifest = _member_bytes(tar, members[MANIFEST], MAX_MANIFEST_BYTES)
            mac = _member_bytes(tar, members[MAC], MAX_MAC_BYTES).decode("ascii", "replace").strip()
            if not verify(key, raw_manifest, mac or None):
                raise ArchiveIntegrityError(
                    "the HMAC does not match the manifest (the file was changed, or signed with another server key)"
                )
            manifest = _manifest(raw_manifest)
            stream = tar.extractfile(members[DATA])
            assert stream is not None
            digest = hashlib.sha256()
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                copy.write(chunk)
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveIntegrityError(f"not a readable Jobyard archive ({exc})") from None
    if copy.tell() != manifest["data"]["bytes"] or digest.hexdigest() != manifest["data"]["sha256"]:
        raise ArchiveIntegrityError("the data's SHA-256 does not match the manifest")
    return manifest


def open_verified(path: Path, key: bytes, *, file: IO[bytes] | None = None) -> VerifiedArchive:
    """Checks the HMAC, then the data's size and SHA-256; raises ArchiveIntegrityError on any mismatch.

    With `file` (already open, e.g. by jobs/paths.py after checking where it is), that is read and `path`
    only names it; the caller closes it."""
    with ExitStack() as stack:
        copy: IO[bytes] = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
        manifest = _verify_into(path, key, copy, file)
        stack.pop_all()
    return VerifiedArchive(path, manifest, copy)
