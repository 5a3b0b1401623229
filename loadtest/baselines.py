"""Baseline (a): the original design's polling consumer, as its own process.

Producers LPUSH one JSON event per request onto a Redis list. This consumer does
what the original monitor_queue loop did: when the list holds at least
MONGO_BULK_INSERT_COUNT (100) items, LRANGE 0..99, then LTRIM 100..-1 (two separate
commands, no transaction), then insert_many(ordered=False); it loops at once while
100 or more are waiting and otherwise sleeps MONITOR_QUEUE_ITERATION_DELAY seconds.
The event id is kept as a field (the original let MongoDB pick _id), so an event
read twice is stored twice. A remainder below 100 is never stored.

    python -m loadtest.baselines --redis redis://127.0.0.1:6379/11 --mongo mongodb://... --interval 5
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

import pymongo
import redis

LIST_KEY = "middleware_log"
BULK = 100


def consume(args: argparse.Namespace) -> int:
    r = redis.Redis.from_url(args.redis)
    collection = pymongo.MongoClient(args.mongo)[args.db]["website_logs"]
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    deadline = time.monotonic() + args.max_seconds
    batches = 0
    print("original consumer ready", flush=True)
    while not stop["now"] and time.monotonic() < deadline:
        try:
            if r.llen(LIST_KEY) >= BULK:
                logs = r.lrange(LIST_KEY, 0, BULK - 1)
                r.ltrim(LIST_KEY, BULK, -1)
                docs = [json.loads(item) for item in logs]
                stored_at = time.time()
                for doc in docs:
                    doc["stored_at"] = stored_at
                collection.insert_many(docs, ordered=False)
                batches += 1
            if r.llen(LIST_KEY) >= BULK:
                continue
            if args.interval > 0:
                time.sleep(args.interval)
        except Exception as exc:  # noqa: BLE001 - the original logged and went on
            print(f"original consumer: {exc!r}", file=sys.stderr, flush=True)
            time.sleep(0.5)
    print(f"original consumer stopped after {batches} batches", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--mongo", required=True)
    parser.add_argument("--db", default="original")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds to sleep when < 100 are waiting")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="hard bound on the run")
    return consume(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
