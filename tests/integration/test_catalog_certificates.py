"""The certificate catalogue through real workers: real certificates on disk, a real SMTP server."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from sqlalchemy import func, insert, select

from core.app import Jobyard
from core.db import Base, utcnow
from core.mail import outbox
from jobs.catalog.certificate_models import certificates_table, validated_domains_table
from jobs.enqueue import enqueue
from jobs.models import ProcessedItem, Run
from jobs.params import InvalidJobRequest
from jobs.queries import items_of
from jobs.registry import REGISTRY
from jobs.status import FINAL, RunStatus
from scheduler import triggers
from tests.conftest import WorkerProcesses, free_port, wait_for
from tests.helpers import run_of
from tests.integration.test_notifications import Inbox

Workers = Callable[..., WorkerProcesses]
Key = ec.EllipticCurvePrivateKey


@pytest.fixture
def inbox(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """A real SMTP server; workers started afterwards send to it."""
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setattr(app, "settings", replace(app.settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    yield handler
    controller.stop()


def finished(app: Jobyard, run_id: str, *, statuses: frozenset[RunStatus] = FINAL) -> Run:
    run: Run = wait_for(lambda: (r := run_of(app, run_id)).status in statuses and r, timeout=60, what=run_id)
    return run


def run_job(app: Jobyard, type_name: str, **params: Any) -> Run:
    return finished(app, enqueue(type_name, params, app=app))


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode().replace("\r\n", "\n")


def count(app: Jobyard, table: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# Real certificates


def certificate(
    name: str, *, signer: tuple[x509.Certificate, Key] | None = None, ca: bool = False, days: float = 365
) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer, signing_key = (signer[0].subject, signer[1]) if signer else (subject, key)
    now = utcnow()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName(f"{name}.example.org"), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signing_key, hashes.SHA256()), key


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


@pytest.fixture
def certificate_dir(tmp_path: Path) -> tuple[Path, dict[str, x509.Certificate]]:
    """A CA, leaves it signed (PEM chain, DER, PKCS#7, in a subdirectory), a duplicate, and three invalid files."""
    ca = certificate("Test CA", ca=True)
    leaves = {name: certificate(name, signer=ca)[0] for name in ("leaf1", "leaf2", "leaf3", "leaf4")}
    root = tmp_path / "certs"
    (root / "sub").mkdir(parents=True)
    (root / "ca.pem").write_bytes(pem(ca[0]))
    (root / "chain.pem").write_bytes(pem(leaves["leaf1"], ca[0]))
    (root / "dup.crt").write_bytes(pem(leaves["leaf1"]))
    (root / "leaf2.der").write_bytes(leaves["leaf2"].public_bytes(serialization.Encoding.DER))
    (root / "bundle.p7b").write_bytes(pkcs7.serialize_certificates([leaves["leaf4"]], serialization.Encoding.PEM))
    (root / "sub" / "leaf3.pem").write_bytes(pem(leaves["leaf3"]))
    (root / "garbage.txt").write_bytes(b"this is not a certificate\n")
    (root / "empty.pem").write_bytes(b"\n")
    (root / "key.pem").write_bytes(
        ca[1].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (root / ".hidden.pem").write_bytes(b"ignored: hidden files are not read")
    return root, {"ca": ca[0], **leaves}


# Import


def test_import_reads_pem_der_pkcs7_and_chains_once_and_mails_the_report(
    app: Jobyard, inbox: Inbox, start_workers: Workers, certificate_dir: tuple[Path, dict[str, x509.Certificate]]
) -> None:
    root, certs = certificate_dir
    start_workers(1)
    params = {"path": str(root), "recursive": True, "notify": ["pki@example.org"]}
    run = run_job(app, "certificates.import", **params)
    assert run.status == RunStatus.COMPLETED_WITH_WARNINGS, run.error  # the garbage file is reported
    assert run.result is not None
    assert (run.result["files"], run.result["certificates_imported"]) == (9, 5)
    assert run.result["imported"] == ["bundle.p7b", "ca.pem", "chain.pem", "leaf2.der", "sub/leaf3.pem"]
    assert run.result["skipped"] == ["dup.crt"]  # leaf1 came with chain.pem
    assert run.result["invalid"] == [
        {"file": "empty.pem", "reason": "empty file"},
        {"file": "garbage.txt", "reason": "neither a PEM nor a DER certificate"},
        {"file": "key.pem", "reason": "PEM data without a readable certificate"},
    ]
    with app.engine.connect() as conn:
        rows = {r.fingerprint_sha256: r for r in conn.execute(select(certificates_table))}
    assert set(rows) == {fingerprint(c) for c in certs.values()}
    ca, leaf1 = rows[fingerprint(certs["ca"])], rows[fingerprint(certs["leaf1"])]
    assert (ca.is_ca, ca.subject, ca.sans, ca.source) == (True, "CN=Test CA", [], str(root / "ca.pem"))
    assert (leaf1.is_ca, leaf1.issuer, leaf1.source) == (False, "CN=Test CA", str(root / "chain.pem"))
    assert leaf1.sans == ["DNS:leaf1.example.org", "IP:10.0.0.1"]
    assert int(leaf1.serial, 16) == certs["leaf1"].serial_number and leaf1.imported_by_run == run.id
    assert leaf1.not_after == certs["leaf1"].not_valid_after_utc
    failed = items_of(app.engine, run.id, status="failed")
    assert [i["key"].split(" ")[0] for i in failed] == ["empty.pem", "garbage.txt", "key.pem"]
    assert "neither a PEM nor a DER certificate" in failed[1]["message"]
    [mail] = inbox.messages
    assert mail["To"] == "pki@example.org"
    assert mail["Subject"] == "[Jobyard] Import certificates: 5 imported, 1 skipped, 3 invalid"
    assert "- sub/leaf3.pem" in body(mail) and "- garbage.txt: neither a PEM nor a DER certificate" in body(mail)

    again = run_job(app, "certificates.import", **params)
    assert again.result is not None
    assert (again.result["certificates_imported"], again.result["files_skipped"]) == (0, 6)
    assert count(app, certificates_table) == 5
    assert {i["status"] for i in items_of(app.engine, again.id)} == {"skipped", "failed"}
    assert inbox.messages[-1]["Subject"] == "[Jobyard] Import certificates: 0 imported, 6 skipped, 3 invalid"


def test_import_dry_run_reports_and_stores_nothing_and_a_changed_file_is_read_again(
    app: Jobyard, inbox: Inbox, start_workers: Workers, certificate_dir: tuple[Path, dict[str, x509.Certificate]]
) -> None:
    root, _ = certificate_dir
    start_workers(1)
    dry = run_job(app, "certificates.import", path=str(root), dry_run=True)
    assert dry.result is not None
    assert (dry.result["certificates_imported"], dry.result["files"]) == (4, 8)  # not recursive: no sub/
    assert count(app, certificates_table) == 0 and count(app, ProcessedItem.__table__) == 0
    run_job(app, "certificates.import", path=str(root))
    assert count(app, certificates_table) == 4
    (root / "dup.crt").write_bytes(pem(certificate("leaf5")[0]))
    changed = run_job(app, "certificates.import", path=str(root))
    assert changed.result is not None
    assert (changed.result["imported"], changed.result["certificates_imported"]) == (["dup.crt"], 1)
    assert inbox.messages == []  # nobody asked for the report


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"path": "{root}/missing"}, "PathRefused: path: {root}/missing does not exist"),
        ({"path": "{root}/ca.pem"}, "PathRefused: path: {root}/ca.pem is not a directory"),
        # Relative: taken from the first import directory (tests/conftest.py make_settings), not from tmp_path.
        ({"path": "certs"}, "/var/imports/certs does not exist"),
        ({"path": "{root}", "notify": ["pki-at-example.org"]}, "notify: not email addresses: pki-at-example.org"),
    ],
)
def test_import_with_bad_parameters_fails_clearly_and_imports_nothing(
    app: Jobyard,
    inbox: Inbox,
    start_workers: Workers,
    certificate_dir: tuple[Path, dict[str, x509.Certificate]],
    params: dict[str, Any],
    error: str,
) -> None:
    root, _ = certificate_dir
    start_workers(1)
    filled = {k: v.format(root=root) if isinstance(v, str) else v for k, v in params.items()}
    run_id = enqueue("certificates.import", filled, app=app)
    run = finished(app, run_id, statuses=frozenset({RunStatus.FAILED}))
    assert run.error is not None and error.format(root=root) in run.error
    assert count(app, certificates_table) == 0 and items_of(app.engine, run_id) == [] and inbox.messages == []


# Expiry notifications


def insert_certificate(app: Jobyard, name: str, *, days: float, ca: bool = False) -> None:
    now = utcnow()
    row = {
        "fingerprint_sha256": hashlib.sha256(name.encode()).hexdigest(),
        "subject": f"CN={name}",
        "issuer": "CN=Test CA",
        "serial": hashlib.md5(name.encode()).hexdigest()[:16],
        "sans": [f"DNS:{name}.example.org"],
        "not_before": now - timedelta(days=100),
        "not_after": now + timedelta(days=days),
        "is_ca": ca,
        "source": "upload",
        "imported_at": now,
    }
    with app.engine.begin() as conn:
        conn.execute(insert(certificates_table).values(**row))


def serial_of(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()[:16]


def test_certificate_expiry_mails_each_recipient_once_per_certificate_and_threshold(
    app: Jobyard, inbox: Inbox, users: Any, start_workers: Workers
) -> None:
    users.add("olivia", "operator", email="olivia@example.org")
    insert_certificate(app, "soon", days=10.04)
    insert_certificate(app, "later", days=20.04)
    insert_certificate(app, "far", days=40)
    insert_certificate(app, "expired", days=-1)
    insert_certificate(app, "device-ca", days=5, ca=True)
    start_workers(1)
    params = {"recipients": ["a@example.org", "b@example.org"], "operators": ["olivia"], "days": 30}
    first = run_job(app, "certificates.expiry_notification", **params)
    assert first.status == RunStatus.COMPLETED and first.result is not None
    assert (first.result["expiring"], first.result["new"], first.result["mails"]) == (2, 2, 3)
    assert sorted(m["To"] for m in inbox.messages) == ["a@example.org", "b@example.org", "olivia@example.org"]
    for mail in inbox.messages:
        assert mail["Subject"] == "[Jobyard] 2 certificate(s) expiring within 30 days"
        text = body(mail)
        assert f"- CN=soon\n  serial {serial_of('soon')}, expires" in text and "10 days left" in text
        assert f"serial {serial_of('later')}" in text and "20 days left" in text
        assert "far" not in text and "expired" not in text and "device-ca" not in text
        assert f"/runs/{first.id}" in text

    second = run_job(app, "certificates.expiry_notification", **params)
    assert second.result is not None and (second.result["new"], second.result["mails"]) == (0, 0)
    assert len(inbox.messages) == 3 and count(app, outbox) == 3
    assert {i["status"] for i in items_of(app.engine, second.id)} == {"skipped"}

    insert_certificate(app, "newcomer", days=3.04)  # enters the window after the first runs
    third = run_job(app, "certificates.expiry_notification", **params)
    assert third.result is not None and (third.result["new"], third.result["mails"]) == (1, 3)
    latest = inbox.messages[3:]
    assert len(latest) == 3 and all(
        m["Subject"] == "[Jobyard] 1 certificate(s) expiring within 30 days" for m in latest
    )
    assert "CN=newcomer" in body(latest[0]) and "CN=soon" not in body(latest[0]) and "3 days left" in body(latest[0])


def test_device_ca_expiry_lists_only_ca_certificates_once(app: Jobyard, inbox: Inbox, start_workers: Workers) -> None:
    insert_certificate(app, "device-ca", days=12.04, ca=True)
    insert_certificate(app, "root-ca-far", days=400, ca=True)
    insert_certificate(app, "leaf", days=5)
    start_workers(1)
    run = run_job(app, "certificates.device_ca_expiry_notification", recipients=["pki@example.org"])
    assert run.result is not None and (run.result["days"], run.result["new"]) == (30, 1)
    [mail] = inbox.messages
    assert mail["Subject"] == "[Jobyard] 1 device CA certificate(s) expiring within 30 days"
    assert "CN=device-ca" in body(mail) and "12 days left" in body(mail) and "leaf" not in body(mail)
    again = run_job(app, "certificates.device_ca_expiry_notification", recipients=["pki@example.org"])
    assert again.result is not None and again.result["mails"] == 0 and len(inbox.messages) == 1


def insert_domain(app: Jobyard, domain: str, by: str, *, days: float) -> None:
    now = utcnow()
    with app.engine.begin() as conn:
        conn.execute(
            insert(validated_domains_table).values(
                domain=domain, validated_by=by, validated_by_name=f"{by}-1", valid_until=now + timedelta(days=days),
                created_at=now,
            )
        )  # fmt: skip


def test_domain_validation_expiry_filters_on_who_validated_and_notifies_each_domain_once(
    app: Jobyard, inbox: Inbox, start_workers: Workers
) -> None:
    insert_domain(app, "ops.example.org", "operator", days=10.04)
    insert_domain(app, "ops.example.org", "user", days=11.04)  # the same domain, also validated by a user
    insert_domain(app, "user.example.net", "user", days=5.04)
    insert_domain(app, "far.example.com", "operator", days=60)
    insert_domain(app, "gone.example.com", "operator", days=-2)
    start_workers(1)
    job = "certificates.domain_validation_expiry_notification"
    operators_only = run_job(app, job, recipients=["dns@example.org"], created_by="operator")
    assert operators_only.result is not None and operators_only.result["new"] == 1
    [mail] = inbox.messages
    assert mail["Subject"] == "[Jobyard] 1 domain validation(s) expiring within 30 days"
    text = body(mail)
    assert "- ops.example.org\n  validated by operator operator-1, valid until" in text and "10 days left" in text
    assert "user.example.net" not in text and "far.example.com" not in text and "gone" not in text

    both = run_job(app, job, recipients=["dns@example.org"], created_by="both")
    assert both.result is not None and (both.result["expiring"], both.result["new"]) == (2, 1)
    assert len(inbox.messages) == 2
    text = body(inbox.messages[1])
    assert "- user.example.net\n  validated by user user-1" in text and "ops.example.org" not in text
    run_job(app, job, recipients=["dns@example.org"], created_by="both")
    assert len(inbox.messages) == 2 and count(app, outbox) == 2


@pytest.mark.parametrize(
    ("job", "params", "error"),
    [
        ("certificates.expiry_notification", {"recipients": ["nobody"]}, "recipients: not email addresses: nobody"),
        ("certificates.device_ca_expiry_notification", {"operators": ["ghost"]}, "operators: no enabled user"),
        ("certificates.domain_validation_expiry_notification", {"created_by": "admins"}, "created_by: must be one"),
    ],
)
def test_notifications_with_bad_parameters_fail_clearly_and_send_nothing(
    app: Jobyard, inbox: Inbox, start_workers: Workers, job: str, params: dict[str, Any], error: str
) -> None:
    insert_certificate(app, "soon", days=3)
    insert_certificate(app, "device-ca", days=3, ca=True)
    insert_domain(app, "ops.example.org", "operator", days=3)
    start_workers(1)
    run_id = enqueue(job, {"recipients": ["ok@example.org"], **params}, app=app)
    run = finished(app, run_id, statuses=frozenset({RunStatus.FAILED}))
    assert run.error is not None and f"BadParameter: {error}" in run.error
    assert count(app, outbox) == 0 and count(app, ProcessedItem.__table__) == 0 and inbox.messages == []


@pytest.mark.parametrize(("days", "problem"), [(-1, "at least 1"), (0, "at least 1"), (3651, "at most 3650")])
def test_a_threshold_out_of_range_is_refused_when_requested(app: Jobyard, days: int, problem: str) -> None:
    with pytest.raises(InvalidJobRequest, match=f"days: must be {problem}, got {days}"):
        enqueue("certificates.expiry_notification", {"recipients": ["ok@example.org"], "days": days}, app=app)
    assert count(app, Run.__table__) == 0


def test_without_recipients_nothing_is_sent_nor_remembered(app: Jobyard, inbox: Inbox, start_workers: Workers) -> None:
    insert_certificate(app, "soon", days=3)
    start_workers(1)
    idle = run_job(app, "certificates.expiry_notification")  # what the default daily schedule runs
    assert idle.status == RunStatus.COMPLETED_WITH_WARNINGS and idle.result is not None
    assert (idle.result["expiring"], idle.result["mails"]) == (1, 0) and count(app, ProcessedItem.__table__) == 0
    configured = run_job(app, "certificates.expiry_notification", recipients=["pki@example.org"])
    assert configured.result is not None and configured.result["mails"] == 1 and len(inbox.messages) == 1


def test_a_wrongly_typed_parameter_is_refused_at_enqueue(app: Jobyard) -> None:
    with pytest.raises(InvalidJobRequest, match="days: must be an integer"):
        enqueue("certificates.expiry_notification", {"days": "soon"}, app=app)
    assert count(app, Run.__table__) == 0


def test_declarations_and_default_schedules() -> None:
    daily = triggers.cron("0 6 * * *").as_text()
    names = {
        "certificates.import": "Import Certificates",
        "certificates.expiry_notification": "Certificate Expiry Notification",
        "certificates.device_ca_expiry_notification": "Device CA Certificate Expiry Notification",
        "certificates.domain_validation_expiry_notification": "Domain Validation Expiry Notification",
    }
    for name, title in names.items():
        declared = REGISTRY.get(name)
        assert declared is not None and declared.title == title and declared.domain is None and declared.exclusive
        schedule = declared.default_schedule
        assert (schedule.as_text() if schedule else None) == (None if name == "certificates.import" else daily)


def test_the_migration_matches_the_models(app: Jobyard) -> None:
    with app.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "certificates" in repr(d) or "validated_domains" in repr(d)] == []
