"""The Jobyard application object: settings plus the connections built from them.

Nothing here connects at import time; a process builds one `Jobyard` from its settings (the CLI does it
from the environment) and passes it on, or installs it as the process default for `jobs.enqueue`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import embedded_redis
from core.db import make_engine, make_session_factory
from core.hotsql import HotSQL
from core.mail import SmtpConfig
from core.settings import Settings
from jobs.dispatch import Dispatcher
from jobs.pusher import Pusher
from jobs.registry import Registry, load_job_modules
from scheduler.clock import Clock


class NoJobyard(RuntimeError):
    pass


class Jobyard:
    _current: ClassVar[Jobyard | None] = None

    def __init__(self, settings: Settings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else load_job_modules(settings.job_modules)

    @classmethod
    def from_env(cls) -> Jobyard:
        return cls(Settings.from_env())

    # The process default, for the module-level `jobs.enqueue(...)` convenience.
    def install(self) -> Jobyard:
        Jobyard._current = self
        return self

    @classmethod
    def current(cls) -> Jobyard:
        if cls._current is None:
            raise NoJobyard("no Jobyard installed: call Jobyard(Settings.from_env()).install() at start-up")
        return cls._current

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.resolved_database_url, sqlite_synchronous=self.settings.sqlite_synchronous)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def redis_url(self) -> str:
        return self.settings.redis_url or embedded_redis.ensure_running(self.settings.data_dir)

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url, health_check_interval=30)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.redis)

    @cached_property
    def pusher(self) -> Pusher:
        return Pusher(self.dispatcher)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Waits until every run this process enqueued has reached Redis."""
        return self.pusher.flush(timeout) if "pusher" in self.__dict__ else True

    @cached_property
    def smtp(self) -> SmtpConfig | None:
        url = self.settings.smtp_url
        return SmtpConfig.from_url(url, self.settings.mail_from) if url else None

    @cached_property
    def hot(self) -> HotSQL:
        return HotSQL(self.engine)

    @cached_property
    def clock(self) -> Clock:
        return Clock(self.redis)

    def child_env(self) -> dict[str, str]:
        """Environment for a child process so that it reaches the same database and Redis."""
        env = self.settings.as_env()
        env["JOBYARD_REDIS_URL"] = self.redis_url
        return env

    def close(self) -> None:
        if "pusher" in self.__dict__:
            self.pusher.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "redis" in self.__dict__:
            self.redis.close()

    def __enter__(self) -> Jobyard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
