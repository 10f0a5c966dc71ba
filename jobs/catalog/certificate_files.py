"""Reading certificate files for the import job: PEM or DER, single certificates, chains, bundles, PKCS#7."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from jobs import paths
from jobs.catalog.certificate_models import inventory_row

MAX_FILE_BYTES = 10 * 1024 * 1024  # far above any real bundle; a bigger file is not a certificate


class InvalidCertificateFile(ValueError):
    """A file holding no readable certificate: reported as an item, never fatal to the import."""


@dataclass(frozen=True)
class CertificateFile:
    path: Path
    name: str  # relative to the imported directory
    digest: str
    rows: tuple[dict[str, Any], ...] = ()
    problem: str | None = None

    @property
    def key(self) -> str:
        # With the content's digest in the key, a file changed since an earlier import is read again.
        return f"{self.name} [{self.digest[:16]}]"


def files_under(root: Path, recursive: bool, warn: Callable[[str], None], import_dirs: Sequence[Path]) -> list[Path]:
    """Regular files (symbolic links to files too), hidden ones left out; subdirectory links are not followed.

    A symbolic link that leads out of the import directories is listed whatever it points at, and refused when
    read: testing it with is_file() would follow it, and which links are listed would tell what exists outside."""
    if recursive:
        found: list[Path] = []
        for folder, subfolders, names in os.walk(root, onerror=lambda exc: warn(f"cannot list {exc.filename}")):
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            found.extend(Path(folder) / n for n in names if not n.startswith("."))
    else:
        found = [p for p in root.iterdir() if not p.name.startswith(".")]
    return sorted(p for p in found if not paths.inside(p, import_dirs) or p.is_file())


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """PEM (a certificate, a chain, a bundle, or PKCS#7) or DER (a certificate or PKCS#7)."""
    if not data.strip():
        raise InvalidCertificateFile("empty file")
    if b"-----BEGIN" in data:
        try:
            if b"-----BEGIN PKCS7-----" in data:
                return pkcs7.load_pem_pkcs7_certificates(data)
            return x509.load_pem_x509_certificates(data)
        except ValueError:
            raise InvalidCertificateFile("PEM data without a readable certificate") from None
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        return pkcs7.load_der_pkcs7_certificates(data)
    except ValueError:
        raise InvalidCertificateFile("neither a PEM nor a DER certificate") from None


def read_file(root: Path, path: Path, import_dirs: Sequence[Path]) -> CertificateFile:
    name = str(path.relative_to(root))
    try:
        _, file = paths.open_file("path", str(path), import_dirs, max_bytes=MAX_FILE_BYTES)
        with file:
            data = file.read()
    except paths.PathRefused as exc:
        problem = "leads outside the import directories" if exc.problem == paths.OUTSIDE else exc.problem
        return CertificateFile(path, name, "-", problem=problem)
    except OSError as exc:
        return CertificateFile(path, name, "-", problem=f"cannot be read: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    try:
        rows = tuple(inventory_row(c) for c in parse_certificates(data))
    except InvalidCertificateFile as exc:
        return CertificateFile(path, name, digest, problem=str(exc))
    except ValueError as exc:  # a certificate whose extensions do not decode
        return CertificateFile(path, name, digest, problem=f"malformed certificate: {exc}")
    return CertificateFile(path, name, digest, rows)
