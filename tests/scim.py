"""A real SCIM 2.0 target for the identity tests: the `scim2-server` test server in a child process."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import SearchRequest

from core.app import Jobyard
from jobs.catalog.identity import targets


@dataclass
class ScimServer:
    """One in-memory SCIM service, empty when it starts; `url` is its base URL (``…/v2``). With `dump_to`,
    the server writes every resource it holds, write-only attributes such as ``password`` included, to that
    file when it stops (`stored_users`)."""

    port: int
    token: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = None
    dump_to: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scim2_server.testserver.cli", "--port", str(self.port),
             f"--bearer-token={self.token}",  # "=": a token may start with "-"
             *(["--dump-resources", str(self.dump_to)] if self.dump_to is not None else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"scim2-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            if self.dump_to is not None:
                self.process.send_signal(signal.SIGINT)  # the server dumps its resources on KeyboardInterrupt
            else:
                self.process.terminate()
            self.process.wait(timeout=10)

    def stored_users(self) -> list[dict[str, Any]]:
        """The users the server held when it stopped, as it stored them (a server started with `dump_to`)."""
        assert self.dump_to is not None, "started without dump_to"
        self.stop()
        resources: list[dict[str, Any]] = json.loads(self.dump_to.read_text())
        return [r for r in resources if "urn:ietf:params:scim:schemas:core:2.0:User" in r["schemas"]]

    @contextmanager
    def client(self) -> Iterator[SyncSCIMClient]:
        """A client of the test's own, to look at what the target holds."""
        with httpx2.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10) as http:
            scim = SyncSCIMClient(http)
            scim.discover()
            yield scim

    def users(self, **filters: str) -> list[Any]:
        with self.client() as scim:
            model = scim.get_resource_model("User")
            query = " and ".join(f'{k} eq "{v}"' for k, v in filters.items()) or None
            found = scim.query(model, query_parameters=SearchRequest(filter=query, count=1000))
            return list(getattr(found, "resources", None) or [])

    def groups(self) -> list[Any]:
        with self.client() as scim:
            found = scim.query(scim.get_resource_model("Group"), query_parameters=SearchRequest(count=1000))
            return list(getattr(found, "resources", None) or [])

    def register(self, app: Jobyard, name: str, role: str) -> None:
        """Configures this server as Jobyard target `name`."""
        targets.save(app.engine, name, role=role, base_url=self.url, token=self.token, by="test")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def scim_server(dump_to: Path | None = None) -> Iterator[ScimServer]:
    server = ScimServer(free_port(), secrets.token_urlsafe(16), dump_to=dump_to)
    server.start()
    try:
        yield server
    finally:
        server.stop()
