"""Bulk import and provisioning end to end against real SCIM services. Prints figures; not a test.

    python bench/identity.py [--rows 500] [--workers 2] [--redis-url redis://127.0.0.1:6379/14]

Two scim2-server processes stand for a domain target and an identity provider. A CSV of `--rows` human
interactive identities is uploaded and imported by `identity.bulk_import`; each row starts a Create domain
user and a Provision identity provider user run. `jobyard worker --burst` processes are timed from their
start until the import, then every provisioning run, is done. Needs the dev extras (scim2-server).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from sqlalchemy import func, select  # noqa: E402

from core.app import Jobyard  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.settings import Settings  # noqa: E402
from jobs.catalog.identity import uploads  # noqa: E402
from jobs.catalog.identity.models import identities_table  # noqa: E402
from jobs.enqueue import enqueue  # noqa: E402
from jobs.models import runs_table  # noqa: E402
from jobs.status import FINAL  # noqa: E402
from tests.scim import scim_server  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def csv_of(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["user_name", "identity_type", "display_name", "email", "platform", "title"])
    for i in range(rows):
        writer.writerow([f"user{i:05d}", "human_interactive", f"User {i}", f"user{i}@example.org", "gws", "Clerk"])
    return out.getvalue().encode()


def count(app: Jobyard, *where: object) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs_table).where(*where)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="FLUSHDB'd at start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobyard-bench-") as tmp, scim_server() as gws, scim_server() as sso:
        settings = Settings(
            data_dir=Path(tmp) / "var", database_url=f"sqlite:///{tmp}/bench.sqlite3", redis_url=args.redis_url,
            secret_key="bench-secret",
        )  # fmt: skip
        with Jobyard(settings) as app:
            app.redis.flushdb()
            upgrade(app.engine)
            gws.register(app, "gws", "domain")
            sso.register(app, "sso", "idp")
            upload_id = uploads.store(app.engine, "people.csv", csv_of(args.rows), "bench")
            import_run = enqueue("identity.bulk_import", {"upload_id": upload_id}, app=app)
            assert app.flush()
            started = time.perf_counter()
            worker = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "worker", "--processes", str(args.workers), "--burst"],
                env={**os.environ, **app.child_env(), "JOBYARD_LOG_LEVEL": "WARNING"}, cwd=REPO,
            )  # fmt: skip
            imported_s = None
            runs = runs_table.c
            while worker.poll() is None:
                if imported_s is None and count(app, runs.id == import_run, runs.status.in_([s.value for s in FINAL])):
                    imported_s = time.perf_counter() - started
                time.sleep(0.05)
            done_s = time.perf_counter() - started
            if imported_s is None:
                imported_s = done_s
            provisioning = count(app, runs.type.like("identity.%"), runs.type != "identity.bulk_import")
            completed = count(app, runs.type.like("identity.%"), runs.status == "completed")
            with app.engine.connect() as conn:
                provisioned = conn.execute(
                    select(func.count()).where(identities_table.c.status == "provisioned")
                ).scalar_one()
            print(f"rows: {args.rows}, worker processes: {args.workers}, SQLite, scim2-server targets")
            print(f"  bulk import run done after {imported_s:6.1f} s  ({args.rows / imported_s:7.1f} rows/s)")
            print(f"  all {provisioning} provisioning runs done after {done_s:6.1f} s  "
                  f"({provisioning / done_s:6.1f} runs/s; {completed} identity runs completed)")  # fmt: skip
            print(f"  identities provisioned: {provisioned} of {args.rows}; users on the targets: "
                  f"{len(gws.users())} + {len(sso.users())}")  # fmt: skip


if __name__ == "__main__":
    main()
