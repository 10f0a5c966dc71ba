"""`jobyard scheduler`: the process that fires schedules and keeps Redis in step with SQL.

Every poll (≤ 1 s) it takes rq-scheduler's lock, fires the schedules whose entries are due, and moves
their entries on. Periodically it re-syncs every entry with SQL, promotes due retries and runs the
reconciler. Any number may run: the lock keeps one polling at a time, and the idempotency of each
firing keeps a replay from firing twice.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from rq import Queue

from core import defaults
from core.db import utcnow
from core.mail import send_pending
from scheduler import schedules
from scheduler.firing import fire_due
from scheduler.sealing import seal_settled
from workers.promoter import promote_due
from workers.reconciler import reconcile_if_free

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.scheduler")


def tick(app: Jobyard) -> int:
    """One poll: fires what is due. Returns how many runs it created."""
    clock = app.clock
    now = utcnow()
    due = clock.due(now)
    # An entry cleared for its unreadable hash is written again from SQL; if due, it fires next poll.
    for schedule_id in due.cleared:
        _put_again(app, schedule_id)
    created = 0
    for start in range(0, len(due.schedule_ids), defaults.SCHEDULE_FIRE_BATCH):
        batch = due.schedule_ids[start : start + defaults.SCHEDULE_FIRE_BATCH]
        firings = fire_due(app, batch, now)
        created += len(firings)
        clock.move({f.schedule_id: f.next_run_at for f in firings if f.next_run_at is not None})
        clock.drop_many([f.schedule_id for f in firings if f.next_run_at is None])
        # Any other due entry was stale (schedule edited, disabled, fired elsewhere): re-read it from SQL.
        fired = {f.schedule_id for f in firings}
        for schedule_id in set(batch) - fired:
            _put_again(app, schedule_id)
        if fired:
            log.info("fired %d schedule(s)", len(fired))
    return created


def _put_again(app: Jobyard, schedule_id: int) -> None:
    try:
        app.clock.put(schedules.get_by_id(app, schedule_id))
    except schedules.ScheduleNotFound:
        app.clock.drop(schedule_id)


def _housekeep(app: Jobyard, stop: threading.Event) -> None:
    while not stop.wait(app.settings.reconcile_interval_s):
        try:
            resync(app)
            promote_due(app.dispatcher, [q.name for q in Queue.all(connection=app.redis)])
            reconcile_if_free(app)
            send_pending(app.engine, app.smtp)
            seal_settled(app)
        except Exception:
            log.exception("scheduler housekeeping failed; will try again")


def resync(app: Jobyard) -> None:
    app.clock.sync(schedules.list_all(app))


def run_scheduler(app: Jobyard, *, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _request_stop)
        signal.signal(signal.SIGINT, _request_stop)

    created, _gone = schedules.ensure_defaults(app)  # it logs what it removes
    for type_name in created:
        log.info("created the default schedule of %s", type_name)
    resync(app)
    rq_scheduler = app.clock.scheduler
    rq_scheduler.name = f"jobyard-{socket.gethostname()}-{os.getpid()}"
    rq_scheduler.register_birth()
    log.info("scheduler started; polling every %ss", defaults.SCHEDULER_POLL_INTERVAL_S)
    # Housekeeping (re-sync, promotion, reconciler, mail) runs beside the firing loop, never in its way.
    housekeeping = threading.Thread(target=_housekeep, args=(app, stop), name="housekeeping", daemon=True)
    housekeeping.start()
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                rq_scheduler.heartbeat()
                if rq_scheduler.acquire_lock():
                    try:
                        tick(app)
                    finally:
                        rq_scheduler.remove_lock()
            except Exception:
                log.exception("scheduler pass failed; will try again")
            stop.wait(max(0.0, defaults.SCHEDULER_POLL_INTERVAL_S - (time.monotonic() - started)))
        housekeeping.join(timeout=30)
    finally:
        rq_scheduler.remove_lock()
        rq_scheduler.register_death()
