"""Load generator: hands events off the way each design's web process would.

Run as a subprocess by loadtest.bench (one process per phase, so that each run
imports its Celery configuration from a clean environment):

    python -m loadtest.drive --mode real --broker redis://127.0.0.1:6379/11 --events 20000 --rate 0

modes
  original  LPUSH of the JSON event onto the Redis list (what the original middleware did)
  naive     one Celery task per event: store_event.apply_async (loadtest.naive_app)
  real      eventlog's own hand-off: django_hook.handoff.spool().append (Spool +
            the real Shipper publishing with tasks.publish.publish_batch)

Several threads hand events off, as fast as possible (--rate 0) or paced to a total
rate. Each event's ``datetime`` is stamped just before its hand-off. The last line
on stdout is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from loadtest.common import new_event_id, percentile, raw_event, round_or_none


def _original(args: argparse.Namespace) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    import redis

    from loadtest.baselines import LIST_KEY

    client = redis.Redis.from_url(args.broker)
    client.ping()  # warm: connected before the first event, as in a running web process

    def handoff(event: dict[str, Any]) -> None:
        client.lpush(LIST_KEY, json.dumps(event, separators=(",", ":")))

    return handoff, lambda: None


def _naive(args: argparse.Namespace) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    os.environ["NAIVE_BROKER_URL"] = args.broker
    from loadtest.naive_app import store_event

    _warm_producer(store_event.app)

    def handoff(event: dict[str, Any]) -> None:
        store_event.apply_async(args=[event])

    return handoff, lambda: None


def _real(args: argparse.Namespace) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    # celeryconfig reads the EVENTLOG_* environment when the shipper first imports it.
    os.environ["EVENTLOG_BROKER_URL"] = args.broker
    os.environ["EVENTLOG_SPOOL_DIR"] = args.spool_dir
    from django.conf import settings

    if not settings.configured:
        settings.configure(EVENTLOG_SPOOL_DIR=args.spool_dir, EVENTLOG_BROKER_URL=args.broker)
    from django_hook import handoff as hook

    # Warm, as a web process that has been serving for a while: the shipper's lazy
    # import of the Celery side (timed: a fresh web process pays it on its first
    # shipment) and a connected producer.
    t0 = time.perf_counter()
    import tasks.publish  # noqa: F401

    args.publish_import_s = round(time.perf_counter() - t0, 3)
    from tasks.app import app

    _warm_producer(app)
    hook.spool()  # starts the spool and its shipper thread, as the middleware's __init__ does

    def wait_shipped() -> None:
        shipper = hook.shipper()
        deadline = time.monotonic() + args.max_seconds
        while shipper is not None and shipper.shipped < args.events and time.monotonic() < deadline:
            time.sleep(0.01)

    def handoff(event: dict[str, Any]) -> None:
        hook.spool().append(event)  # exactly the middleware's call

    return handoff, wait_shipped


def _warm_producer(app: Any) -> None:
    with app.producer_pool.acquire(block=True, timeout=10) as producer:
        producer.connection.ensure_connection(max_retries=3)


MODES = {"original": _original, "naive": _naive, "real": _real}


def run(args: argparse.Namespace) -> dict[str, Any]:
    handoff, wait_shipped = MODES[args.mode](args)
    templates = [raw_event(i) for i in range(min(args.events, 4096))]
    threads = max(1, args.threads)
    firsts: list[float] = []
    lasts: list[float] = []
    costs: list[list[int]] = [[] for _ in range(threads)]
    errors = [0] * threads
    done = [0] * threads
    start = threading.Barrier(threads + 1)
    deadline = time.monotonic() + args.max_seconds
    t0_holder: dict[str, float] = {}

    def worker(k: int) -> None:
        start.wait()
        t0 = t0_holder["t0"]
        first = last = 0.0
        my_costs = costs[k]
        for i in range(k, args.events, threads):
            if args.rate > 0:
                delay = t0 + i / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if time.monotonic() > deadline:
                break
            event = dict(templates[i % len(templates)])
            event["event_id"] = new_event_id()
            event["datetime"] = now = time.time()
            c0 = time.perf_counter_ns()
            try:
                handoff(event)
            except Exception:  # noqa: BLE001 - counted, reported as not handed off
                errors[k] += 1
                continue
            my_costs.append(time.perf_counter_ns() - c0)
            done[k] += 1
            first = first or now
            last = now
        if first:
            firsts.append(first)
            lasts.append(last)

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for thread in pool:
        thread.start()
    t0_holder["t0"] = time.perf_counter()
    start.wait()
    for thread in pool:
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
    handed_off_at = time.time()
    wait_shipped()
    all_costs = [c / 1000.0 for cs in costs for c in cs]
    return {
        "mode": args.mode,
        "events": args.events,
        "handed_off": sum(done),
        "errors": sum(errors),
        "threads": threads,
        "rate": args.rate,
        "first_handoff": min(firsts) if firsts else None,
        "last_handoff": max(lasts) if lasts else None,
        "all_handed_off_at": handed_off_at,
        "shipped_at": time.time(),
        "cpu_seconds": round(time.process_time(), 2),
        "publish_import_s": getattr(args, "publish_import_s", None),
        "handoff_call_us_p50": round_or_none(percentile(all_costs, 50), 1),
        "handoff_call_us_p99": round_or_none(percentile(all_costs, 99), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s in total; 0 = as fast as possible")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--spool-dir", default="")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    summary = run(args)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
