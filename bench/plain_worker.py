"""One plain RQ SimpleWorker in burst mode, the baseline of bench/throughput.py.

python -m bench.plain_worker --name plain-0 --queues plain --redis-url redis://127.0.0.1:6379/14
"""

from __future__ import annotations

import argparse
import logging

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.plain_worker")
    parser.add_argument("--name", required=True)
    parser.add_argument("--queues", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    connection = Redis.from_url(args.redis_url)
    queues = [Queue(q, connection=connection, serializer=JSONSerializer) for q in args.queues.split(",")]
    worker = SimpleWorker(queues, connection=connection, serializer=JSONSerializer, name=args.name)
    worker.work(burst=True, with_scheduler=False, logging_level=args.log_level)
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
