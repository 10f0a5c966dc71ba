"""Poison planted straight into Redis leaves nothing behind: a real worker process, a real scheduler
process, real Redis and SQL. A pickle is never unpickled: the ones planted here create a marker file
when loaded, and the marker never appears."""

from __future__ import annotations

import json
import pickletools
import uuid
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import pytest
from redis import Redis
from redis.typing import EncodableT
from rq import Queue
from rq.job import Job
from sqlalchemy import func, select

from core.app import Jobyard
from core.db import utcnow
from jobs.dispatch import ENTRYPOINT
from jobs.enqueue import enqueue
from jobs.models import Run
from scheduler import schedules, triggers
from scheduler.clock import entry_id, payload_is_ours, schedule_id_of
from tests.conftest import JobyardProcess, WorkerProcesses, wait_for
from tests.helpers import run_of
from workers.models import RefusedJob, WorkerRecord

SCHEDULER_SET = "rq:scheduler:scheduled_jobs"
Fields = dict[EncodableT, EncodableT]


pytestmark = pytest.mark.both_databases


def armed_pickle(marker: Path) -> bytes:
    """A pickle whose loading calls open(marker, "w"), which creates the marker file.

    Written opcode by opcode (protocol 0), so that no pickle module is needed to make it; pickletools only
    reads the opcodes back (it runs nothing), to show that this is a pickle any unpickler would act on."""
    payload = b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR."
    opcodes = [opcode.name for opcode, _arg, _pos in pickletools.genops(payload)]
    assert opcodes == ["GLOBAL", "MARK", "UNICODE", "UNICODE", "TUPLE", "REDUCE", "STOP"]
    return payload


def job_data(func_name: str, args: list[object]) -> bytes:
    """A payload as RQ's JSON serializer writes it."""
    return json.dumps([func_name, None, args, {}]).encode()


def traces(redis: Redis, entry: bytes) -> list[str]:
    """Every place in Redis that still names `entry`: a key, or a member of a list, set or sorted set
    (RQ's started registry stores "<job id>:<execution id>")."""
    found = []
    for key in cast(Iterable[bytes], redis.scan_iter(count=1000)):
        if entry in key:
            found.append(f"key {key!r}")
        kind = cast(bytes, redis.type(key))
        members: list[bytes] = []
        if kind == b"list":
            members = cast(list[bytes], redis.lrange(key, 0, -1))
        elif kind == b"zset":
            members = cast(list[bytes], redis.zrange(key, 0, -1))
        elif kind == b"set":
            members = list(cast(set[bytes], redis.smembers(key)))
        found += [f"{key!r} holds {m!r}" for m in members if m == entry or m.startswith(entry + b":")]
    return found


def test_poison_in_a_queue_is_refused_and_removed_and_the_worker_goes_on(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses], tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    armed = armed_pickle(marker)
    unknown_run = uuid.uuid4().hex
    queued: Fields = {"status": "queued", "origin": "default", "description": "planted"}
    # entry in the queue → (its hash, or None for none; what the refusal must say)
    poison: dict[bytes, tuple[Fields | None, str]] = {
        b"pickled-zlib": ({**queued, "data": zlib.compress(armed)}, "only JSON is accepted"),
        b"pickled-raw": ({**queued, "data": armed}, "only JSON is accepted"),
        b"pickled-meta": ({**queued, "data": job_data(ENTRYPOINT, ["pickled-meta"]), "meta": armed}, "unreadable meta"),
        b"garbage": ({**queued, "data": b"\x00\xff\x10 garbage \x80\x81"}, "only JSON is accepted"),
        b"wrong-shape": ({**queued, "data": b'{"func": "os.system"}'}, "only JSON is accepted"),
        b"no-data": (queued, "a job hash without data"),
        b"bad-status": ({**queued, "status": "hungry", "data": job_data(ENTRYPOINT, ["bad-status"])}, "ValueError"),
        b"foreign-func": ({**queued, "data": job_data("os.system", ["true"])}, "'os.system' is not a Jobyard run"),
        unknown_run.encode(): ({**queued, "data": job_data(ENTRYPOINT, [unknown_run])}, "names no Jobyard run"),
        b"\xff\xfe not text": ({**queued, "data": armed}, "names no job"),
        b"some-run:exec": (None, "names no job"),
    }
    for entry, (fields, _reason) in poison.items():
        if fields is not None:
            app.redis.hset(b"rq:job:" + entry, mapping=fields)
        app.redis.rpush("rq:queue:default", entry)
    normal = enqueue("demo.noop", app=app)  # queued behind all of them
    assert app.flush()

    workers = start_workers(1)
    wait_for(lambda: run_of(app, normal).status == "completed", timeout=30, what="the run behind the poison")

    with app.sessions() as session:
        refused = {r.rq_job_id: r.reason for r in session.scalars(select(RefusedJob))}
        worker_processes = session.scalar(select(func.count()).select_from(WorkerRecord))
    for entry, (_fields, reason) in poison.items():
        name = entry.decode("utf-8", "backslashreplace")
        assert reason in refused.get(name, ""), (name, refused.get(name))
        assert traces(app.redis, entry) == [], name
    queue = Queue("default", connection=app.redis)
    for registry in (queue.intermediate_queue_key, queue.started_job_registry.key, queue.failed_job_registry.key):
        assert not app.redis.exists(registry), registry
    assert not marker.exists()
    # Still the first worker process: none crashed and was replaced by its supervisor.
    assert workers.process.poll() is None and worker_processes == 1


def test_foreign_entries_in_rq_schedulers_set_are_dropped_and_schedules_still_fire(
    app: Jobyard, start_scheduler: Callable[[], JobyardProcess], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "unpickled"
    armed = armed_pickle(marker)
    schedule = schedules.set_schedule(app, "demo.noop", triggers.interval(1), by="test")
    own_entry = Job.key_for(entry_id(schedule.id))
    # The schedule's own entry, its payload swapped for a pickle: cleared, then written again from SQL.
    app.redis.hset(own_entry, "data", zlib.compress(armed))
    app.redis.hset("rq:job:foreign", mapping={"data": zlib.compress(armed), "status": "scheduled"})
    app.redis.hset(
        "rq:job:lookalike", mapping={"data": zlib.compress(job_data("scheduler.firing.fire", [schedule.id]))}
    )
    due, later = int(utcnow().timestamp()) - 5, int(utcnow().timestamp()) + 100_000
    foreign: dict[bytes, float] = {
        b"foreign": due,  # a pickled hash
        b"lookalike": due,  # a hash like Jobyard's, under another id
        b"no-hash": due,
        b"\xff\xfe not text": due,
        b"jobyard-schedule-x": due,
        b"jobyard-schedule-0" + str(schedule.id).encode(): due,
        b"not-yet-due": later,
    }
    app.redis.zadd(SCHEDULER_SET, foreign)
    app.redis.zadd(SCHEDULER_SET, {entry_id(999_999): due})  # a schedule that does not exist

    def fired() -> int:
        with app.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Run).where(Run.schedule_id == schedule.id)) or 0)

    scheduler = start_scheduler()
    wait_for(lambda: fired() >= 3, timeout=30, what="the schedule to fire after its entry was cleared")
    members = cast(list[bytes], app.redis.zrange(SCHEDULER_SET, 0, -1))
    assert not set(foreign) & set(members) and entry_id(999_999).encode() not in members
    assert all(schedule_id_of(m) is not None for m in members), members
    assert payload_is_ours(cast(bytes, app.redis.hget(own_entry, "data")), schedule.id)
    assert scheduler.process.poll() is None
    assert not marker.exists()
    logged = capfd.readouterr().err
    for member in foreign:
        assert f"dropped {member!r} from rq-scheduler's entries" in logged, member
    assert f"entry of schedule {schedule.id} had no readable hash; cleared" in logged
