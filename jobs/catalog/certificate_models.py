"""SQL tables of the certificate catalogue (seed 000).

Tables owned here (and `inventory_row`, which reads a certificate into a ``certificates`` row):
- ``certificates``       the certificate inventory filled by "Import certificates": one row per distinct
                         certificate (``fingerprint_sha256``, unique, is the SHA-256 of its DER encoding),
                         with its subject and issuer (RFC 4514), serial number (lowercase hex), subject
                         alternative names (JSON list such as ``["DNS:example.org", "IP:10.0.0.1"]``),
                         validity (``not_before``, ``not_after``, indexed for the expiry notifications),
                         whether it is a CA (basic constraints), where it came from (``source``: the file
                         path, or ``"upload"``), when and by which run it was imported.
- ``validated_domains``  domain validation records: a domain validated by an operator or by a user
                         (``validated_by``: ``operator`` | ``user``; ``validated_by_name``: who), valid until
                         ``valid_until`` (indexed). Read by "Domain validation expiry notification".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import JSON, Boolean, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime

VALIDATORS = ("operator", "user")


class Certificate(Base):
    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text)
    serial: Mapped[str] = mapped_column(String(100))
    sans: Mapped[list[str]] = mapped_column(JSON)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    is_ca: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(1000))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # No foreign key: the inventory outlives runs that are purged or archived.
    imported_by_run: Mapped[str | None] = mapped_column(String(32))


class ValidatedDomain(Base):
    __tablename__ = "validated_domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(253))
    validated_by: Mapped[str] = mapped_column(String(10))  # operator | user
    validated_by_name: Mapped[str] = mapped_column(String(200))
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def inventory_row(certificate: x509.Certificate) -> dict[str, Any]:
    """The columns of ``certificates`` read from the certificate itself."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [
            *(f"DNS:{v}" for v in names.get_values_for_type(x509.DNSName)),
            *(f"IP:{v}" for v in names.get_values_for_type(x509.IPAddress)),
            *(f"email:{v}" for v in names.get_values_for_type(x509.RFC822Name)),
            *(f"URI:{v}" for v in names.get_values_for_type(x509.UniformResourceIdentifier)),
        ]
    except x509.ExtensionNotFound:
        sans = []
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    serial = format(certificate.serial_number, "x")  # padded below to whole octets, as certificate tools print it
    return {
        "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex(),
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial": serial.zfill(len(serial) + len(serial) % 2),
        "sans": sans,
        "not_before": certificate.not_valid_before_utc,
        "not_after": certificate.not_valid_after_utc,
        "is_ca": is_ca,
    }


certificates_table = cast(Table, Certificate.__table__)
validated_domains_table = cast(Table, ValidatedDomain.__table__)
