"""README command 1: `jobyard up` on embedded defaults (its own Redis server and SQLite)."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core import embedded_redis
from tests.conftest import REPO, free_port, wait_for


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
        [sys.executable, "-m", "core.cli", "up", "--until-done", "--processes", "2", "--port", str(free_port())],
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


def test_up_serves_the_dashboard_with_a_generated_admin_login(short_data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBYARD_")}
    env["JOBYARD_DATA_DIR"] = str(short_data_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "up", "--processes", "1", "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _status(f"{base}/healthz") == 200, timeout=60, what="the web process to answer")
        password = (short_data_dir / "admin-password").read_text().strip()
        assert (short_data_dir / "admin-password").stat().st_mode & 0o077 == 0
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        login_page = browser.open(f"{base}/login").read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
        assert csrf is not None
        form = urllib.parse.urlencode({"username": "admin", "password": password, "csrf_token": csrf.group(1)})
        browser.open(f"{base}/login", data=form.encode())
        runs_page = browser.open(f"{base}/runs").read().decode()
        for demo in ("demo.noop", "demo.progress", "demo.fail", "demo.sleep"):
            assert demo in runs_page
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "created user admin" in output


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except (urllib.error.URLError, ConnectionError):
        return 0
