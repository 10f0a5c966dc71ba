"""README command 1: `jobyard up` on embedded defaults (its own Redis server and SQLite)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core import embedded_redis
from tests.conftest import REPO


@pytest.fixture
def short_data_dir() -> Iterator[Path]:
    # The embedded Redis listens on a Unix socket in the data dir; socket paths must stay short.
    with tempfile.TemporaryDirectory(prefix="jy-") as directory:
        data_dir = Path(directory) / "var"
        yield data_dir
        embedded_redis.stop(data_dir)


def test_up_runs_the_demo_set_to_completion_on_embedded_defaults(short_data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBYARD_")}
    env["JOBYARD_DATA_DIR"] = str(short_data_dir)
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "up", "--until-done", "--processes", "2"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    final = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1].startswith("demo."):
            final[parts[1]] = parts[2]
    assert final == {
        "demo.noop": "completed",
        "demo.progress": "completed",
        "demo.fail": "completed",
        "demo.sleep": "completed",
    }
    assert "retrying" in result.stdout  # demo.fail times=2 was seen waiting for its retry
    assert (short_data_dir / "jobyard.sqlite3").exists()
    socket_path = short_data_dir / "redis.sock"
    assert redis.Redis(unix_socket_path=str(socket_path)).ping()
    # The embedded server keeps an append-only file, so queued work survives its restart.
    assert redis.Redis(unix_socket_path=str(socket_path)).config_get("appendonly") == {"appendonly": "yes"}
