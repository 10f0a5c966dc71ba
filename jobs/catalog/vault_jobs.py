"""Built-in vault job type: Change Vault Key (seed 002's "change key for confidential storage").

After a new key is put first in `JOBYARD_VAULT_KEYS` (the old ones still listed after it), this job
re-encrypts under the newest key every vault secret (current and previous version) and every sealed
parameter of runs and schedules; then the old keys can be removed. A value already under the newest key
is left alone (found by decrypting with the newest key alone), so a second run finds nothing to do.

A run's parameters are part of its HMAC (core/integrity.py): a signed run whose HMAC still matches is
signed again over its new parameters in the same UPDATE, an unsigned settled one is signed then too (so
that the sealing pass cannot sign it over the parameters it read before), and one whose HMAC does not
match keeps it, so that Verify HMAC still reports it. Every UPDATE re-checks what was read (a run's
status, series and HMAC, a schedule's change time) and skips a row changed meanwhile; the next run
takes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, Table, Text, Update, cast, select, update

from core import crypto, defaults, integrity, vault
from jobs.context import JobContext, PermanentFailure
from jobs.models import runs_table
from jobs.registry import job_type
from jobs.status import FINAL
from scheduler.models import schedules_table
from scheduler.sealing import signed_select, writing

LONG_TIMEOUT_S = 6 * 3600
FINAL_VALUES = frozenset(s.value for s in FINAL)
MAX_LISTED = 50


@dataclass
class _Tally:
    rekeyed: int = 0
    unreadable: list[str] = field(default_factory=list)
    raced: int = 0


def _rekey_params(secret_key: str, params: dict[str, Any], where: str, tally: _Tally) -> dict[str, Any] | None:
    """`params` with every sealed value under the newest key; None when nothing needs it."""
    changed = False
    out = dict(params)
    for name, value in params.items():
        if not crypto.is_sealed(value) or crypto.is_current(secret_key, value[crypto.SECRET_MARKER]):
            continue
        try:
            out[name] = {crypto.SECRET_MARKER: crypto.reencrypt(secret_key, value[crypto.SECRET_MARKER])}
        except ValueError:
            tally.unreadable.append(f"{where} parameter {name}")
            continue
        changed = True
    return out if changed else None


def _with_secrets(ctx: JobContext, table: Table, columns: Any) -> Iterator[Sequence[Row[Any]]]:
    """Rows of `table` whose parameters hold a sealed value, in id order, a batch at a time."""
    after: Any = None
    marker = cast(table.c.params, Text).like(f'%"{crypto.SECRET_MARKER}"%')
    while True:
        ctx.check_cancelled()
        query = columns.where(marker).order_by(table.c.id).limit(defaults.VAULT_REKEY_BATCH)
        if after is not None:
            query = query.where(table.c.id > after)
        with ctx.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _rekey_runs(ctx: JobContext, secret_key: str, key: bytes, tally: _Tally) -> None:
    c = runs_table.c
    for rows in _with_secrets(ctx, runs_table, signed_select(runs_table)):
        updates: list[Update] = []
        for row in rows:
            params = _rekey_params(secret_key, row.params, f"run {row.id}", tally)
            if params is None:
                continue
            old = row._mapping
            mac = row.hmac
            settled = row.status in FINAL_VALUES
            if settled and (mac is None or integrity.verify(key, integrity.canonical("runs", old), mac)):
                mac = integrity.sign_row(key, "runs", {**old, "params": params})
            same_mac = c.hmac.is_(None) if row.hmac is None else c.hmac == row.hmac
            statement = (
                update(runs_table)
                .where(c.id == row.id, c.status == row.status, c.series == row.series, same_mac)
                .values(params=params, hmac=mac)
            )
            updates.append(statement)
        _apply(ctx, updates, tally)


def _rekey_schedules(ctx: JobContext, secret_key: str, tally: _Tally) -> None:
    c = schedules_table.c
    for rows in _with_secrets(ctx, schedules_table, select(c.id, c.params, c.changed_at)):
        updates: list[Update] = []
        for row in rows:
            params = _rekey_params(secret_key, row.params, f"schedule {row.id}", tally)
            if params is None:
                continue
            statement = (
                update(schedules_table).where(c.id == row.id, c.changed_at == row.changed_at).values(params=params)
            )
            updates.append(statement)
        _apply(ctx, updates, tally)


def _apply(ctx: JobContext, updates: list[Update], tally: _Tally) -> None:
    if not updates:
        return
    with writing(ctx.engine) as conn:
        for statement in updates:
            if conn.execute(statement).rowcount:
                tally.rekeyed += 1
            else:
                tally.raced += 1


@job_type(
    "vault.change_key",
    title="Change Vault Key",
    description=(
        "Re-encrypts every vault secret (and its previous version) and every secret parameter of runs and "
        "schedules under the newest key of JOBYARD_VAULT_KEYS, after a new key was put first in that list; the "
        "old keys can then be removed. Values already under the newest key are left alone, so a second run "
        "finds nothing to do. Secrets never appear in the report."
    ),
    timeout_s=LONG_TIMEOUT_S,
    exclusive=True,
)
def change_key(ctx: JobContext) -> dict[str, Any]:
    secret_key = ctx.app.settings.secret_key if ctx.app is not None else ""
    if not secret_key:
        raise PermanentFailure("JOBYARD_SECRET_KEY is not set: there are no vault keys to re-encrypt with")
    key = integrity.records_key(secret_key)
    report: dict[str, Any] = {}
    ctx.progress(0, 3, "vault secrets")
    found = vault.Rekeyed()
    after: str | None = None
    while after := vault.reencrypt(ctx.engine, after=after, limit=defaults.VAULT_REKEY_BATCH, found=found):
        ctx.check_cancelled()
    report["vault_secrets"] = found.rekeyed
    unreadable = [f"vault secret {name}" for name in found.unreadable]
    raced = found.raced
    ctx.progress(1, 3, "run parameters")
    runs = _Tally()
    _rekey_runs(ctx, secret_key, key, runs)
    report["run_params"] = runs.rekeyed
    ctx.progress(2, 3, "schedule parameters")
    schedules = _Tally()
    _rekey_schedules(ctx, secret_key, schedules)
    report["schedule_params"] = schedules.rekeyed
    ctx.progress(3, 3)
    unreadable += runs.unreadable + schedules.unreadable
    raced += runs.raced + schedules.raced
    for what in unreadable[:MAX_LISTED]:
        ctx.warning(f"{what} cannot be decrypted with any configured key: left as it is")
    report |= {"unreadable": len(unreadable), "unreadable_listed": unreadable[:MAX_LISTED], "changed_meanwhile": raced}
    if raced:
        ctx.warning(f"{raced} row(s) changed while being re-encrypted: run the job again to finish them")
    ctx.info(
        f"re-encrypted {report['vault_secrets']} vault secret(s), {report['run_params']} run(s) and "
        f"{report['schedule_params']} schedule(s)"
    )
    return report
