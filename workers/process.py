"""Entry point of one worker process started by the supervisor: `python -m workers.process`."""

from __future__ import annotations

import argparse
import logging

from core.app import Jobyard
from workers.worker import run_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workers.process")
    parser.add_argument("--name", required=True)
    parser.add_argument("--queues", required=True)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--instance")
    args = parser.parse_args(argv)
    with Jobyard.from_env() as app:
        logging.basicConfig(level=app.settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        run_worker(app, args.queues.split(","), name=args.name, instance=args.instance, burst=args.burst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
