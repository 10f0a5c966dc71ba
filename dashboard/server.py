"""`jobyard web`: gunicorn serving `dashboard.wsgi:build()`, configured from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from dashboard.wsgi import build

        return build()


def serve(host: str, port: int, *, workers: int, threads: int, control_socket: Path) -> None:
    """`control_socket`: gunicorn's own default is one path per user (~/.gunicorn/gunicorn.ctl), which every
    gunicorn of that user on the host would share; one per data directory and port does not collide."""
    control_socket.parent.mkdir(parents=True, exist_ok=True)
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "accesslog": "-",
            "graceful_timeout": 30,
            "control_socket": str(control_socket),
        }
    ).run()
