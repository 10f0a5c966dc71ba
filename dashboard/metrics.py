"""Prometheus metrics at `/metrics`, behind the same authentication as every route (any role, or a session).

Each Flask app gets its own `CollectorRegistry` with one `JobyardCollector`, so that several apps in one
process (the tests) never share state. Metrics (all gauges unless said otherwise):

- ``jobyard_runs{type,status}``                     runs in the record; every status of each type seen.
- ``jobyard_attempt_duration_seconds{type}``       histogram of finished attempts (finished_at − started_at),
                                                    buckets `DURATION_BUCKETS_S`; _bucket/_sum/_count.
- ``jobyard_retries_total{type}``                   counter: attempts beyond the first of their series.
- ``jobyard_workers_alive``                         worker processes not stopped and seen within
                                                    `worker_dead_after_s` (the reconciler's rule).
- ``jobyard_queue_length{queue}``                   jobs waiting in the RQ list ``rq:queue:<queue>``.
- ``jobyard_queue_scheduled{queue}``                jobs in RQ's scheduled registry ``rq:scheduled:<queue>``.
- ``jobyard_database_up``, ``jobyard_redis_up``     1 when the backend answered this scrape, else 0.
- ``jobyard_metrics_age_seconds``                   age of the SQL figures served (they are cached).
- ``jobyard_metrics_refresh_seconds``               how long their last refresh took.

The SQL figures are aggregates over whole tables, so they are cached per app for `METRICS_CACHE_TTL_S` and
refreshed by one request at a time. Attempts are the costly part (each must be joined to its run for the
type): settled ones are folded into a running total once (`AttemptFigures`), so that after the first
scrape of a process a refresh joins only recent attempts. Queue figures come from Redis on every
scrape: a few O(1) commands in one round trip.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, abort, current_app
from flask.blueprints import BlueprintSetupState
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import RedisError
from redis.exceptions import ResponseError
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    FromClause,
    Interval,
    and_,
    cast,
    extract,
    func,
    literal,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from core import defaults
from core.db import utcnow
from dashboard.security import current_principal
from jobs.models import attempts_table as attempts
from jobs.models import runs_table as runs
from jobs.status import RunStatus
from workers.models import workers_table as workers

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger(__name__)

METRICS_CACHE_TTL_S = defaults.METRICS_CACHE_TTL_S
# Upper bounds (seconds) of the attempt duration buckets: from sub-second no-ops to hour-long exports,
# roughly ×2-×3 apart; +Inf is added. Changing them changes the series, so keep them stable.
DURATION_BUCKETS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
SETTLED_AFTER_S = defaults.METRICS_SETTLED_AFTER_S
LOOKUP_MAX_ATTEMPTS = defaults.METRICS_LOOKUP_MAX_ATTEMPTS
# The text format generate_latest writes; prometheus_client ≥ 0.22 names 1.0.0 as CONTENT_TYPE_LATEST.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# app.config key: overrides METRICS_CACHE_TTL_S for one app (0 disables the cache).
TTL_CONFIG_KEY = "JOBYARD_METRICS_CACHE_TTL_S"
_EXTENSION = "jobyard_metrics"
_QUEUE_PREFIX = Queue.redis_queue_namespace_prefix

metrics_blueprint = Blueprint("metrics", __name__)


@dataclass(frozen=True)
class Tally:
    """Attempts of one job type: cumulative bucket counts (one per DURATION_BUCKETS_S bound), finished
    attempts (the +Inf bucket), their summed duration, and retries (attempts numbered 2 or more)."""

    buckets: tuple[int, ...]
    count: int
    sum_s: float
    retries: int

    def plus(self, other: Tally, sign: int = 1) -> Tally:
        return Tally(
            tuple(a + sign * b for a, b in zip(self.buckets, other.buckets, strict=True)),
            self.count + sign * other.count,
            self.sum_s + sign * other.sum_s,
            self.retries + sign * other.retries,
        )


EMPTY = Tally((0,) * len(DURATION_BUCKETS_S), 0, 0.0, 0)
Tallies = dict[str, Tally]


def _combine(left: Tallies, right: Tallies, sign: int = 1) -> Tallies:
    out = dict(left)
    for type_name, tally in right.items():
        out[type_name] = out.get(type_name, EMPTY).plus(tally, sign)
    return out


def _add(tallies: Tallies, type_name: str, tally: Tally) -> None:
    tallies[type_name] = tallies.get(type_name, EMPTY).plus(tally)


@dataclass(frozen=True)
class SqlFigures:
    runs: dict[tuple[str, str], int]  # (type, status) → runs
    attempts: Tallies
    workers_alive: int
    refreshed_at: float  # monotonic
    took_s: float


def _tally_columns(engine: Engine) -> list[ColumnElement[Any]]:
    finished, started = attempts.c.finished_at, attempts.c.started_at
    if engine.dialect.name == "postgresql":
        # Timestamp comparisons and one interval sum per group: per-row epoch seconds (a numeric per row
        # and bucket) cost twice the join itself. An unfinished attempt compares as NULL: in no bucket.
        total: ColumnElement[Any] = cast(extract("epoch", func.sum(finished - started)), Float)
        within = [finished <= started + literal(timedelta(seconds=b), Interval()) for b in DURATION_BUCKETS_S]
    else:
        # SQLite stores timestamps as text; julianday() reads them (precision well under a millisecond).
        seconds = (func.julianday(finished) - func.julianday(started)) * 86400.0
        total = func.sum(seconds)
        within = [seconds <= bound for bound in DURATION_BUCKETS_S]
    return [
        func.count(finished),
        func.coalesce(total, 0.0),
        func.count().filter(attempts.c.number > 1),
        *(func.count().filter(w) for w in within),
    ]


def _tally(row: Sequence[Any]) -> Tally:
    count, sum_s, retries, *buckets = row
    return Tally(tuple(int(b) for b in buckets), int(count), float(sum_s), int(retries))


class AttemptFigures:
    """Attempt tallies per type, read incrementally: attempts that can no longer change are folded into
    a running total once, so that a refresh only joins the attempts after `watermark` (by id) to runs.

    An attempt is settled when it has finished and started more than `margin_s` ago; finished attempts
    are never updated. Only a contiguous run of settled ids is folded, and never past the newest settled
    one: an attempt whose insert is not yet committed started recently, and every id above it belongs to
    an attempt that started no earlier, so it cannot fall below the fold. That holds while commits take
    less than `margin_s` and worker clocks are within it of each other. Deleted attempts stay counted
    until the process restarts, as a Prometheus counter should.
    """

    def __init__(self, margin_s: float = SETTLED_AFTER_S, lookup_max: int = LOOKUP_MAX_ATTEMPTS) -> None:
        self.margin_s = margin_s
        self.lookup_max = lookup_max
        self.watermark = 0
        self.settled: Tallies = {}

    def _fold_point(self, conn: Connection) -> tuple[int, int]:
        """(the highest id up to which every attempt after the watermark is settled, attempts after the
        watermark), in one pass over them without a join."""
        cutoff = utcnow() - timedelta(seconds=self.margin_s)
        settled = and_(attempts.c.finished_at.is_not(None), attempts.c.started_at < cutoff)
        oldest_open, newest_settled, pending = conn.execute(
            select(
                func.min(attempts.c.id).filter(~settled), func.max(attempts.c.id).filter(settled), func.count()
            ).where(attempts.c.id > self.watermark)
        ).one()
        if newest_settled is None:
            return self.watermark, int(pending)
        fold_to = newest_settled if oldest_open is None else min(oldest_open - 1, newest_settled)
        return max(self.watermark, int(fold_to)), int(pending)

    def read(self, conn: Connection, engine: Engine) -> Tallies:
        fold_to, pending = self._fold_point(conn)
        if pending <= self.lookup_max:
            # Each run looked up by its key: PostgreSQL would otherwise hash-join a few thousand attempts
            # against a scan of every run.
            run_type: ColumnElement[Any] = select(runs.c.type).where(runs.c.id == attempts.c.run_id).scalar_subquery()
            source: FromClause = attempts
        else:
            run_type, source = runs.c.type, attempts.join(runs, runs.c.id == attempts.c.run_id)
        folding = attempts.c.id <= fold_to
        query = (
            select(run_type.label("type"), folding.label("folding"), *_tally_columns(engine))
            .select_from(source)
            .where(attempts.c.id > self.watermark)
            .group_by(run_type, folding)
        )
        settled, fresh = dict(self.settled), Tallies()
        for row in conn.execute(query):
            _add(settled if row.folding else fresh, row.type, _tally(row[2:]))
        self.settled, self.watermark = settled, fold_to
        return _combine(settled, fresh)


def read_sql_figures(jobyard: Jobyard, attempt_figures: AttemptFigures | None = None) -> SqlFigures:
    started = time.perf_counter()
    engine = jobyard.engine
    alive_since = utcnow() - timedelta(seconds=jobyard.settings.worker_dead_after_s)
    with engine.connect() as conn:
        by_type_status = select(runs.c.type, runs.c.status, func.count()).group_by(runs.c.type, runs.c.status)
        run_counts = {(t, s): int(n) for t, s, n in conn.execute(by_type_status)}
        tallies = (attempt_figures or AttemptFigures()).read(conn, engine)
        alive = conn.execute(
            select(func.count()).where(workers.c.stopped_at.is_(None), workers.c.last_seen_at >= alive_since)
        ).scalar_one()
    return SqlFigures(run_counts, tallies, int(alive), time.monotonic(), time.perf_counter() - started)


@dataclass
class FiguresCache:
    """The last SQL figures of one app; one caller at a time refreshes them, the others wait and share."""

    ttl_s: float
    clock: Callable[[], float] = time.monotonic
    _figures: SqlFigures | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, read: Callable[[], SqlFigures]) -> SqlFigures:
        with self._lock:
            if self._figures is None or self.clock() - self._figures.refreshed_at >= self.ttl_s:
                self._figures = read()
            return self._figures


def _queue_names(jobyard: Jobyard) -> list[str]:
    names = {job_type.queue for job_type in jobyard.registry}
    for key in jobyard.redis.smembers(Queue.redis_queues_keys):
        try:
            text = key.decode() if isinstance(key, bytes) else str(key)
        except UnicodeDecodeError:
            continue  # planted: no queue of RQ's is named so
        if text.startswith(_QUEUE_PREFIX):
            names.add(text[len(_QUEUE_PREFIX) :])
    return sorted(names)


def read_queues(jobyard: Jobyard) -> dict[str, tuple[int, int]]:
    """queue → (jobs waiting in its list, jobs in its scheduled registry). A queue whose keys Redis holds in
    another shape (WRONGTYPE: planted, not RQ's) is left out; Redis answered, and the other queues count."""
    names = _queue_names(jobyard)
    with jobyard.redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(_QUEUE_PREFIX + name)
            pipe.zcard(ScheduledJobRegistry.key_template.format(name))
        replies = pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, RedisError) and not isinstance(reply, ResponseError):
            raise reply  # Redis did not answer: reported as down
    return {
        name: (int(waiting), int(later))
        for name, waiting, later in zip(names, replies[::2], replies[1::2], strict=True)
        if not isinstance(waiting, Exception) and not isinstance(later, Exception)
    }


class JobyardCollector(Collector):
    def __init__(self, jobyard: Jobyard, cache: FiguresCache) -> None:
        self.jobyard = jobyard
        self.cache = cache
        self.attempt_figures = AttemptFigures()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing at registration: collect() queries the database

    def collect(self) -> Iterator[Metric]:
        database_up = GaugeMetricFamily("jobyard_database_up", "1 when the database answered this scrape.")
        try:
            figures = self.cache.get(lambda: read_sql_figures(self.jobyard, self.attempt_figures))
        except SQLAlchemyError:
            log.warning("metrics: the database did not answer", exc_info=True)
            database_up.add_metric([], 0)
        else:
            database_up.add_metric([], 1)
            yield from self._sql_metrics(figures)
        yield database_up
        redis_up = GaugeMetricFamily("jobyard_redis_up", "1 when Redis answered this scrape.")
        try:
            queues = read_queues(self.jobyard)
        except RedisError:
            log.warning("metrics: Redis did not answer", exc_info=True)
            redis_up.add_metric([], 0)
        else:
            redis_up.add_metric([], 1)
            yield from self._queue_metrics(queues)
        yield redis_up

    def _sql_metrics(self, figures: SqlFigures) -> Iterator[Metric]:
        runs_metric = GaugeMetricFamily(
            "jobyard_runs", "Runs in the record by job type and status.", labels=["type", "status"]
        )
        for type_name in sorted({t for t, _ in figures.runs}):
            for status in RunStatus:
                runs_metric.add_metric([type_name, status.value], figures.runs.get((type_name, status.value), 0))
        yield runs_metric
        durations = HistogramMetricFamily(
            "jobyard_attempt_duration_seconds", "Duration of finished attempts by job type.", labels=["type"]
        )
        retries = CounterMetricFamily(
            "jobyard_retries", "Attempts beyond the first of their series, by job type.", labels=["type"]
        )
        for type_name, a in sorted(figures.attempts.items()):
            buckets = [(repr(float(b)), float(n)) for b, n in zip(DURATION_BUCKETS_S, a.buckets, strict=True)]
            durations.add_metric([type_name], [*buckets, ("+Inf", float(a.count))], a.sum_s)
            retries.add_metric([type_name], a.retries)
        yield durations
        yield retries
        yield GaugeMetricFamily(
            "jobyard_workers_alive", "Worker processes not stopped and recently seen.", value=figures.workers_alive
        )
        yield GaugeMetricFamily(
            "jobyard_metrics_age_seconds",
            "Age of the SQL figures in this scrape (they are cached).",
            value=max(0.0, self.cache.clock() - figures.refreshed_at),
        )
        yield GaugeMetricFamily(
            "jobyard_metrics_refresh_seconds", "Time the last refresh of the SQL figures took.", value=figures.took_s
        )

    @staticmethod
    def _queue_metrics(queues: dict[str, tuple[int, int]]) -> Iterator[Metric]:
        length = GaugeMetricFamily("jobyard_queue_length", "Jobs waiting in the RQ queue.", labels=["queue"])
        scheduled = GaugeMetricFamily(
            "jobyard_queue_scheduled", "Jobs in the RQ scheduled registry of the queue.", labels=["queue"]
        )
        for name, (waiting, later) in queues.items():
            length.add_metric([name], waiting)
            scheduled.add_metric([name], later)
        yield length
        yield scheduled


@metrics_blueprint.record_once
def _install(state: BlueprintSetupState) -> None:
    app = state.app
    cache = FiguresCache(float(app.config.get(TTL_CONFIG_KEY, METRICS_CACHE_TTL_S)))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobyardCollector(app.extensions["jobyard"], cache))
    app.extensions[_EXTENSION] = (registry, cache)


@metrics_blueprint.get("/metrics")
def metrics() -> Response:
    # Figures cover every domain and job type: only principals who may see all of them may scrape.
    principal = current_principal()
    if not (principal.is_admin or (principal.read_only and principal.domain is None)):
        abort(403)
    registry, _cache = current_app.extensions[_EXTENSION]
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE)
