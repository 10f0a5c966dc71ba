"""The identities pages (seed 003): the list (display status, filters by status and type, search by user name,
pages of `PAGE_SIZE`), an identity with its provisioning operations and their runs, "New identity" and "Bulk
import" for admins and operators granted the job types involved. Who may do what is dashboard/identity_operations.py's
to say: principals limited to a domain get 403 on every page here.

A refused creation re-renders the form with every problem (400) and stores nothing; the credential typed in
is never sent back to the browser. An accepted import goes to its run's page.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from dashboard import identity_operations as ops
from dashboard.auth.roles import Role
from dashboard.pages.forms import FormProblems
from dashboard.pages.views import actor, jobyard, pages
from dashboard.security import current_principal, require_roles
from jobs.catalog.identity import targets
from jobs.catalog.identity.identities import IDENTITY_TYPES, SELF_CREDENTIALED, BadIdentity, NewIdentity
from jobs.catalog.identity.uploads import BadUpload

PAGE_SIZE = 50
MAX_ID = 2**31 - 1
TEXT_FIELDS = ("user_name", "identity_type", "display_name", "email", "platform", "department", "title", "idp_target")
TYPE_HELP = {
    "human_interactive": "a person: a domain user on the platform (when it is a domain target) and a single "
    "sign-on user at the identity provider",
    "shared_managed": "a shared account whose password Jobyard manages: a domain user on the platform",
    "shared_external": "a shared account managed elsewhere: its credential is stored in the vault",
    "service_account": "a service account: its JSON key is stored in the vault",
    "api_key": "an API key: the key is stored in the vault",
    "oauth_client": "an OAuth client: its credentials are stored in the vault",
}
WRITERS = (Role.ADMIN, Role.OPERATOR)


def _arg(name: str) -> str | None:
    return request.args.get(name, "").strip() or None


def _filters(problems: FormProblems) -> tuple[ops.IdentityFilter, int | None]:
    status, identity_type, before = _arg("status"), _arg("type"), _arg("before_id")
    if status is not None and status not in ops.DISPLAY_STATUSES:
        problems.add("status", f"must be one of {', '.join(ops.DISPLAY_STATUSES)}")
        status = None
    if identity_type is not None and identity_type not in IDENTITY_TYPES:
        problems.add("type", f"must be one of {', '.join(IDENTITY_TYPES)}")
        identity_type = None
    before_id = None
    if before is not None:
        if before.isascii() and before.isdigit() and 0 < int(before) <= MAX_ID:
            before_id = int(before)
        else:
            problems.add("before_id", f"{before[:40]!r} is not an identity id")
    text = _arg("q")
    if text is not None and len(text) > 200:
        problems.add("q", "must be at most 200 characters")
        text = None
    return ops.IdentityFilter(status=status, identity_type=identity_type, text=text), before_id


@pages.get("/identities")
def identities() -> ResponseReturnValue:
    problems = FormProblems()
    filters, before_id = _filters(problems)
    page = ops.IdentityPage()
    if problems:
        flash(f"Bad filter: {problems.summary()}", "error")
    else:
        page = ops.list_identities(jobyard(), current_principal(), filters, before_id=before_id, limit=PAGE_SIZE)
    kept: dict[str, Any] = {
        k: v for k, v in (("status", filters.status), ("type", filters.identity_type), ("q", filters.text)) if v
    }
    context: dict[str, Any] = {
        "identities": page.identities,
        "chosen": kept,
        "display_statuses": ops.DISPLAY_STATUSES,
        "identity_types": IDENTITY_TYPES,
        "problems": problems,
        "may_create": ops.may_create_identities(jobyard(), current_principal()),
        "may_import": ops.may_import_identities(jobyard(), current_principal()),
        "older_url": url_for("pages.identities", **kept, before_id=page.next_cursor) if page.next_cursor else None,
        "newest_url": url_for("pages.identities", **kept) if before_id is not None else None,
    }
    return render_template("identities.html", **context), 400 if problems else 200


@pages.get(f"/identities/<int(max={MAX_ID}):identity_id>")
def identity_detail(identity_id: int) -> ResponseReturnValue:
    detail = ops.identity(jobyard(), current_principal(), identity_id)
    return render_template("identity_detail.html", identity=detail, type_help=TYPE_HELP)


def _render_new(values: dict[str, str], problems: FormProblems, status: int = 200) -> ResponseReturnValue:
    known = targets.listed(jobyard().engine)
    context: dict[str, Any] = {
        "values": values,
        "problems": problems,
        "identity_types": IDENTITY_TYPES,
        "self_credentialed": SELF_CREDENTIALED,
        "type_help": TYPE_HELP,
        # Names only: which targets exist is what the form needs, nothing of their tokens.
        "domain_targets": [t.name for t in known if t.role == "domain"],
        "idp_targets": [t.name for t in known if t.role == "idp"],
    }
    return render_template("identity_new.html", **context), status


@pages.get("/identities/new")
@require_roles(*WRITERS)
def new_identity() -> ResponseReturnValue:
    ops.require_creator(jobyard(), current_principal())
    return _render_new({"identity_type": "human_interactive"}, FormProblems())


@pages.post("/identities/new")
@require_roles(*WRITERS)
def create_identity() -> ResponseReturnValue:
    form = request.form
    values = {name: form.get(name, "").strip() for name in TEXT_FIELDS}
    credential = form.get("credential", "")
    optional = {name: values[name] or None for name in TEXT_FIELDS[2:]}
    new = NewIdentity(
        values["user_name"], values["identity_type"], credential=credential if credential.strip() else None, **optional
    )
    try:
        created = ops.create_identity(jobyard(), actor(), new)
    except BadIdentity as exc:
        problems = FormProblems()
        for error in exc.errors:
            problems.add(error.field, error.problem)
        flash(f"Identity not created: {problems.summary()}", "error")
        return _render_new(values, problems, 400)
    link = url_for("pages.identity_detail", identity_id=created.identity_id)
    flash(Markup('Identity <a href="{}">{}</a> created: {}.').format(link, new.user_name, created.status), "success")
    return redirect(link)


def _render_import(values: dict[str, bool], problem: str | None = None, status: int = 200) -> ResponseReturnValue:
    return render_template("identity_import.html", values=values, problem=problem), status


@pages.get("/identities/import")
@require_roles(*WRITERS)
def import_identities_form() -> ResponseReturnValue:
    ops.require_importer(jobyard(), current_principal())
    return _render_import({"dry_run": True, "continue_on_error": False})


@pages.post("/identities/import")
@require_roles(*WRITERS)
def import_identities() -> ResponseReturnValue:
    values = {name: request.form.get(name) == "true" for name in ("dry_run", "continue_on_error")}
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        flash("Import not started: choose a CSV file.", "error")
        return _render_import(values, "file: choose a CSV file", 400)
    data = sent.read()
    try:
        started = ops.start_import(jobyard(), actor(), sent.filename, data, **values)
    except BadUpload as exc:
        flash(f"Import not started: {exc}", "error")
        return _render_import(values, f"file: {exc}", 400)
    link = url_for("pages.run_detail", run_id=started.run_id)
    what = "Dry run of the import" if values["dry_run"] else "Import"
    flash(Markup('{} of {} started: <a href="{}">run {}</a>').format(what, sent.filename, link, started.run_id),
          "success")  # fmt: skip
    return redirect(link)
