"""`jobyard targets …` and `jobyard identities …`: real child processes against the test's database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import vault
from core.app import Jobyard
from dashboard.auth.audit import entries
from jobs.catalog.identity import targets
from jobs.catalog.identity.models import identities_table, operations_table
from tests.conftest import REPO

TOKEN = "scim-" + "t0ken" * 6


def jobyard(app: Jobyard, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args], input=stdin, env={**os.environ, **app.child_env()}, cwd=REPO,
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def identity_count(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(identities_table)).scalar_one())


def test_a_target_is_added_from_stdin_listed_masked_updated_and_removed(app: Jobyard, tmp_path: Path) -> None:
    added = jobyard(app, "targets", "add", "gws", "--role", "domain", "--url", "https://gws.example.org/v2/",
                    stdin=TOKEN + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "target gws added" in added.stdout
    assert vault.get(app.engine, targets.secret_name("gws")) == TOKEN
    listed = jobyard(app, "targets", "list")
    assert "gws" in listed.stdout and "https://gws.example.org/v2" in listed.stdout
    assert TOKEN not in listed.stdout and vault.masked(TOKEN) in listed.stdout
    as_json = json.loads(jobyard(app, "targets", "list", "--json").stdout)
    assert as_json == [{"name": "gws", "role": "domain", "base_url": "https://gws.example.org/v2",
                        "token_masked": vault.masked(TOKEN)}]  # fmt: skip
    token_file = tmp_path / "token"
    token_file.write_text("other-token\n")
    updated = jobyard(app, "targets", "add", "gws", "--role", "domain", "--url", "https://x.example.org",
                      "--token-file", str(token_file), "--json")  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout) == {"name": "gws", "role": "domain", "base_url": "https://x.example.org",
                                          "token_masked": vault.masked("other-token"), "created": False}  # fmt: skip
    assert vault.get(app.engine, targets.secret_name("gws")) == "other-token"
    kept = jobyard(
        app, "targets", "add", "gws", "--role", "domain", "--url", "https://x.example.org/scim", "--keep-token"
    )
    assert kept.returncode == 0, kept.stderr
    assert vault.get(app.engine, targets.secret_name("gws")) == "other-token"
    assert targets.get(app.engine, "gws").base_url == "https://x.example.org/scim"
    moved = jobyard(app, "targets", "add", "gws", "--role", "domain", "--url", "https://y.example.org", "--keep-token")
    assert moved.returncode == 2 and "token: is required again when the target moves" in moved.stderr
    assert targets.get(app.engine, "gws").base_url == "https://x.example.org/scim"
    removed = jobyard(app, "targets", "remove", "gws", "--json")
    assert (
        json.loads(removed.stdout) == {"name": "gws", "removed": True}
        and targets.listed(app.engine) == []
        and vault.names(app.engine) == []
    )
    actions = [e.action for e in reversed(entries(app.engine))]
    assert actions == ["target_save", "target_save", "target_save", "target_remove"]
    assert all(e.actor.startswith("cli:") for e in entries(app.engine))


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("add", "Bad Name", "--role", "domain", "--url", "https://x.example.org"), TOKEN, "name: must be"),
        (("add", "gws", "--role", "domain", "--url", "ftp://x.example.org"), TOKEN, "base_url: must be an http(s)"),
        (("add", "gws", "--role", "domain", "--url", "https://x.example.org"), "", "token: must be"),
        (("add", "gws", "--role", "domain", "--url", "https://x.example.org"), "two words", "token: must be"),
        (("add", "gws", "--role", "domain", "--url", "https://x.org", "--keep-token"), "", "token: is required"),
        (("add", "gws", "--role", "domain", "--url", "https://x", "--token-file", "/nonexistent"), "", "cannot read"),
        (("add", "gws", "--role", "mailer", "--url", "https://x.example.org"), TOKEN, "'mailer' is not one of"),
        (("remove", "nope"), "", "no SCIM target named 'nope'"),
        # Bytes that are not UTF-8 on the command line (a lone surrogate in Python): refused before any command.
        (("add", "gws", "--role", "domain", "--url", "https://h\udcff.example.org/v2"), TOKEN,
         "argument 'https://h\\xff.example.org/v2' is not valid UTF-8"),
        # An HTTP header carries ASCII only: a token that is not would fail every provisioning run.
        (("add", "gws", "--role", "domain", "--url", "https://x.example.org"), "t\u00f6ken", "token: must be"),
    ],
)  # fmt: skip
def test_a_bad_target_exits_2_with_the_reason_and_stores_nothing(
    app: Jobyard, args: tuple[str, ...], stdin: str, message: str
) -> None:
    result = jobyard(app, "targets", *args, stdin=stdin)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert TOKEN not in result.stderr
    assert targets.listed(app.engine) == [] and vault.names(app.engine) == []


def test_identities_are_created_with_their_runs_and_listed(app: Jobyard, tmp_path: Path) -> None:
    targets.save(app.engine, "gws", role="domain", base_url="https://gws.example.org/v2", token=TOKEN, by="t")
    targets.save(app.engine, "sso", role="idp", base_url="https://sso.example.org/v2", token=TOKEN, by="t")
    human = jobyard(app, "identities", "create", "ada", "--type", "human_interactive", "--platform", "gws",
                    "--email", "ada@example.org", "--display-name", "Ada Lovelace", "--json")  # fmt: skip
    assert human.returncode == 0, human.stderr
    created = json.loads(human.stdout)
    assert created["status"] == "pending" and set(created["runs"]) == {"create_domain_user", "provision_idp_user"}
    with app.engine.connect() as conn:
        runs = {row.run_id for row in conn.execute(select(operations_table.c.run_id))}
    assert runs == set(created["runs"].values())
    credential = tmp_path / "key.json"
    credential.write_text('{"private_key": "secret-material"}\n')
    service = jobyard(app, "identities", "create", "svc-backup", "--type", "service_account", "--credential-file",
                      str(credential))  # fmt: skip
    assert service.returncode == 0, service.stderr
    assert "provisioned" in service.stdout and "secret-material" not in service.stdout
    [secret] = [n for n in vault.names(app.engine) if n.startswith("identity:")]
    assert vault.get(app.engine, secret) == '{"private_key": "secret-material"}'
    from_stdin = jobyard(app, "identities", "create", "key-1", "--type", "api_key", "--credential-file", "-",
                         stdin="k-123")  # fmt: skip
    assert from_stdin.returncode == 0, from_stdin.stderr
    listed = jobyard(app, "identities", "list")
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "USER", "NAME"]
    assert [line.split()[1] for line in rows] == ["key-1", "svc-backup", "ada"]
    pending = json.loads(jobyard(app, "identities", "list", "--status", "pending", "--json").stdout)
    assert [(i["user_name"], i["display_status"]) for i in pending] == [("ada", "pending")]
    assert "secret-material" not in jobyard(app, "identities", "list", "--json").stdout
    assert [e.action for e in entries(app.engine)] == ["identity_create"] * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bad name", "--type", "api_key", "--credential-file", "-"), "user_name: must be"),
        (("svc", "--type", "api_key"), "credential: is required"),
        (("ada", "--type", "human_interactive"), "needs an identity provider target"),
        (("ada", "--type", "human_interactive", "--email", "nope"), "email: is not an email address"),
        (("svc", "--type", "robot"), "'robot' is not one of"),
        # Bytes that are not UTF-8 on the command line (a lone surrogate in Python): refused before any command.
        (
            ("svc", "--type", "api_key", "--credential-file", "-", "--display-name", "Ada\udcff"),
            "argument 'Ada\\xff' is not valid UTF-8",
        ),
        (
            ("svc", "--type", "api_key", "--credential-file", "-", "--email", "a\udcff@example.org"),
            "argument 'a\\xff@example.org' is not valid UTF-8",
        ),
    ],
)
def test_a_bad_identity_exits_2_naming_the_field_and_stores_nothing(
    app: Jobyard, args: tuple[str, ...], message: str
) -> None:
    result = jobyard(app, "identities", "create", *args, stdin="k")
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert identity_count(app) == 0 and vault.names(app.engine) == []


def test_a_taken_user_name_exits_2(app: Jobyard) -> None:
    assert jobyard(app, "identities", "create", "key-1", "--type", "api_key", "--credential-file", "-",
                   stdin="k").returncode == 0  # fmt: skip
    again = jobyard(app, "identities", "create", "key-1", "--type", "api_key", "--credential-file", "-", stdin="k")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert identity_count(app) == 1
