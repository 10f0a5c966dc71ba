"""`jobyard scheduler`: the long-running process that runs the reconciler periodically."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from workers.reconciler import reconcile_if_free

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.scheduler")


def run_scheduler(app: Jobyard, *, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _request_stop)
        signal.signal(signal.SIGINT, _request_stop)
    log.info("scheduler started; reconciling every %.1fs", app.settings.reconcile_interval_s)
    while not stop.is_set():
        try:
            reconcile_if_free(app)
        except Exception:
            log.exception("reconciler pass failed; will try again")
        stop.wait(app.settings.reconcile_interval_s)
