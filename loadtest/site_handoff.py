"""One hand-off process of benchmark (d2) (loadtest.site_bench): the site's event mix, no HTTP.

    EVENTLOG_BROKER_URL=... EVENTLOG_SPOOL_DIR=... python -m loadtest.site_handoff --rate 200 \\
        --seconds 15 --step p800 --index 0 --processes 4 --go-file /tmp/go --out /tmp/p800-0.json

It stands for one web process of the demo site: its own Spool (in the spool directory
the other hand-off processes share) and its own Shipper thread publishing with
tasks.publish.publish_batch (raw lines), started by django_hook.handoff exactly as the
middleware starts them, with the site's EVENTLOG_SHIP_INTERVAL / EVENTLOG_SHIP_BATCH.

Before the clock starts it draws the step's page views from loadtest.site_load's mix
and builds their raw events with loadtest.store_ceiling.view_events: the middleware's
page-view event, then for pages running tracker.js the tracker's js.pageview (after the
page's load delay), js.visit_end and now and then js.exit (after the visitor's stay), as
the beacon endpoint spools them. Page views are spaced so that the step offers ``rate``
events/s (tracker events included). Each page view's Referer carries its tag
(``<step>-<seq>``, seq = n * processes + index), as in the HTTP ladder.

It prints "ready" once warm, waits for --go-file (its first line: the epoch start time),
then appends each event at its time (page view ``datetime`` and tracker ``received``/``ts``
stamped at the append, as the site does), waits until its shipper has published
everything, and writes records in loadtest.site_load's format (page views "answered" when
appended, tracker events 204) and a summary to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from loadtest.agents import ip_pool
from loadtest.common import percentile, round_or_none
from loadtest.site_load import Mix, make_tag, with_tag

BASE_URL = "http://127.0.0.1:8000"


def plan_step(draw: Any, rate: float, seconds: float) -> tuple[float, list[list[tuple[float, dict[str, Any]]]]]:
    """Draw page views (``draw(at)`` -> that page view's (offset, raw event) list, offsets
    from ``at``) until they hold ``rate * seconds`` events; returns the spacing between page
    views that spreads them over ``seconds`` and each page view's events at their offsets."""
    want = max(1, round(rate * seconds))
    views: list[list[tuple[float, dict[str, Any]]]] = []
    events = 0
    while events < want:
        timed = draw(0.0)
        views.append(timed)
        events += len(timed)
    spacing = seconds / len(views)
    return spacing, [[(i * spacing + offset, event) for offset, event in timed] for i, timed in enumerate(views)]


def records_for(views: list[list[tuple[float, dict[str, Any]]]], step: str, index: int,
                processes: int) -> list[tuple[float, dict[str, Any], dict[str, Any]]]:
    """(offset, event, record) of every event, in time order; tags the page views' Referers."""
    out = []
    for n, timed in enumerate(views):
        tag = make_tag(step, n * processes + index)
        page = timed[0][1]
        page["referrer"] = with_tag(page["referrer"], tag)
        tracker = timed[1:]
        out.append((timed[0][0], page, {"k": "page", "tag": tag, "sched": 0.0, "sent": 0.0, "done": 0.0,
                                        "status": 0, "hops": 0, "path": page["path_info"], "js": bool(tracker),
                                        "pv": page["event_id"] if tracker else None}))
        for offset, event in tracker:
            event["referrer"] = page["referrer"]  # the tracker reports the page's Referer
            kind = event["kind"].removeprefix("js.")
            out.append((offset, event, {"k": "beacon", "tag": tag, "sent": 0.0, "done": 0.0, "status": 0,
                                        "kinds": [kind], "pv": event["page_view_id"],
                                        "exit_id": event["event_id"] if kind == "exit" else None}))
    out.sort(key=lambda item: item[0])
    return out


def stamp(event: dict[str, Any], now: float) -> None:
    """The times the site sets at the hand-off: the middleware's datetime, the beacon's received."""
    if event.get("source") == "middleware":
        event["datetime"] = now
    else:
        event["received"] = now
        event["ts"] = int(now * 1000)


def summarize(records: list[dict[str, Any]], late: list[float], cpu_s: float, wall: float,
              shipped: int, ship_wait: float) -> dict[str, Any]:
    pages = [r for r in records if r["k"] == "page"]
    return {"page_views": len(pages), "events": len(records), "appended": sum(1 for r in records if r["status"]),
            "errors": sum(1 for r in records if not r["status"]), "wall_s": round(wall, 2),
            "late_p50_s": round_or_none(percentile(late, 50)), "late_p99_s": round_or_none(percentile(late, 99)),
            "late_max_s": round_or_none(max(late) if late else None), "cpu_seconds": round(cpu_s, 2),
            "shipped": shipped, "ship_wait_s": round(ship_wait, 2)}


def _start_handoff(args: argparse.Namespace) -> Any:
    from django.conf import settings

    if not settings.configured:
        settings.configure(EVENTLOG_SHIP_INTERVAL=args.ship_interval, EVENTLOG_SHIP_BATCH=args.ship_batch)
    import tasks.publish  # noqa: F401 - warm, as a web process that has been serving for a while
    from django_hook import handoff
    from tasks.app import app

    with app.producer_pool.acquire(block=True, timeout=10) as producer:
        producer.connection.ensure_connection(max_retries=3)
    handoff.spool()  # the spool and its shipper thread, as the middleware's __init__ starts them
    return handoff


def run(args: argparse.Namespace) -> dict[str, Any]:
    from loadtest.store_ceiling import view_events

    rng = random.Random(args.seed)
    mix = Mix(BASE_URL, rng, ip_pool(args.mmdb, rng))
    _, views = plan_step(lambda at: view_events(mix.next_view(), at, rng), args.rate, args.seconds)
    items = records_for(views, args.step, args.index, args.processes)
    handoff = _start_handoff(args)
    spool = handoff.spool()
    print("ready", flush=True)
    go = Path(args.go_file)
    deadline = time.time() + args.max_seconds
    while not go.exists() or not go.read_text().strip():
        if time.time() > deadline:
            raise SystemExit("no go file")
        time.sleep(0.01)
    t0 = float(go.read_text().split()[0])
    cpu0 = time.process_time()
    late: list[float] = []
    for offset, event, record in items:
        due = t0 + offset
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        now = time.time()
        stamp(event, now)
        if record["k"] == "page":
            record["sched"] = due
            late.append(max(0.0, now - due))
        try:
            spool.append(event)  # exactly the middleware's (and the beacon endpoint's) call
            record["status"] = 200 if record["k"] == "page" else 204
            record["hops"] = 1 if record["k"] == "page" else 0
        except OSError as exc:
            record["error"] = type(exc).__name__
        record["sent"] = record["done"] = now
    ended = time.time()
    shipper = handoff.shipper()
    appended = sum(1 for _, _, r in items if r["status"])
    while shipper is not None and shipper.shipped < appended and time.time() < deadline:
        time.sleep(0.01)
    summary = summarize([r for _, _, r in items], late, time.process_time() - cpu0, ended - t0,
                        shipper.shipped if shipper else 0, time.time() - ended)
    summary.update(step=args.step, index=args.index, rate=args.rate, seconds=args.seconds, pid=os.getpid())
    return {"summary": summary, "records": [r for _, _, r in items]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, required=True, help="events/s this process offers")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--step", required=True, help="tag prefix: letters and digits")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mmdb", help="GeoIP City database the client IPs are checked against")
    parser.add_argument("--go-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--ship-interval", type=int, default=200, help="EVENTLOG_SHIP_INTERVAL (ms)")
    parser.add_argument("--ship-batch", type=int, default=500, help="EVENTLOG_SHIP_BATCH")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    data = run(args)
    Path(args.out).write_text(json.dumps(data))
    print(json.dumps(data["summary"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
