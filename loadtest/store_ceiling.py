"""The store's own ceiling for benchmark (d)'s traffic: EventStore.store_writes alone, one process.

    python -m loadtest.store_ceiling --mongo mongodb://127.0.0.1:PORT --page-views 8000 [--batch 1000]

Builds the raw events the site's traffic produces (loadtest.site_load's page mix: the
middleware's page views, and the tracker's pageview, visit_end and exit events as
collect/ spools them), enriches them with pipeline.enrich.enrich_events (GeoIP, user
agents) before any clock starts, orders the writes as they would arrive (a page view's
insert, its pageview merge shortly after, its visit_end seconds later) and times
store_writes on batches of EVENTLOG_BATCH_SIZE writes, on fresh databases with the
worker's indexes and validator:

  mix       page-view inserts + the merge upserts the beacons cause + exit links
  inserts   the page-view inserts alone (what loadtest.bench's ceiling measured)

The last line on stdout is a JSON summary (events/s = writes performed per second).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from deploy.stack import geolite_city_db
from loadtest.agents import ip_pool
from loadtest.common import GEOIP_TEST_DB, new_event_id, percentile, round_or_none
from loadtest.site_load import Mix, View, goodbye_events, pageview_event
from loadtest.tracker_beacons import TrackedPage
from loadtest.traffic import BOT_PROBES, STALE_PATHS

NOMINAL_RATE = 100.0  # page views/s: spaces the beacons' arrival between the page views' inserts
TITLE = "Tutorials | eventlog demo"
EXTERNAL_LINKS = ("https://www.gnu.org/software/bash/", "https://creativecommons.org/licenses/by-sa/4.0/")
# What the demo answers for the mix's stale links and crawler probes (loadtest.traffic).
NOT_FOUND = frozenset(STALE_PATHS + BOT_PROBES) - {"/tutorial-search"}
REDIRECTS = frozenset({"/tutorial-search"})  # APPEND_SLASH


def _view_kwargs(path: str) -> dict[str, str]:
    parts = path.strip("/").split("/")
    if parts[0] == "watch" and len(parts) == 4:
        return {"foss": parts[1], "tutorial": parts[2], "language": parts[3]}
    return {}


def page_view_event(view: View, at: float, user: str) -> dict[str, Any]:
    """The raw event EventLogMiddleware spools for ``view`` (same fields)."""
    path = urlsplit(view.path).path
    first = "eventlog_vid" not in view.browser.cookies
    return {
        "event_id": new_event_id(), "source": "middleware", "path_info": path, "visited_by": user,
        "user_agent": view.browser.user_agent, "ip_address": view.browser.forwarded_for, "datetime": at,
        "first_time_visit": first, "method": "GET", "referrer": view.referrer, "page_title": "", "view_args": [],
        "view_kwargs": _view_kwargs(path), "post_data": None,
        "visitor_id": view.browser.cookies.setdefault("eventlog_vid", new_event_id()),
        "status_code": 404 if path in NOT_FOUND else 301 if path in REDIRECTS else 200,
    }


def tracker_events(view: View, raw: dict[str, Any], at: float) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, raw event) of the browser's beacons, as collect/ spools them."""
    page = TrackedPage(raw["event_id"], raw["path_info"], TITLE, view.referrer, EXTERNAL_LINKS)
    server = {"source": "js", "visited_by": raw["visited_by"], "ip_address": raw["ip_address"],
              "user_agent": raw["user_agent"], "visitor_id": raw["visitor_id"], "first_time_visit": False}
    loaded, left = at + view.load_delay, at + view.load_delay + view.stay
    spooled = [(loaded, pageview_event(view, page))] + [(left, e) for e in goodbye_events(view, page)]
    return [(when, {**event, **server, "received": when, "kind": f"js.{event['kind']}"}) for when, event in spooled]


def view_events(view: View, at: float, rng: random.Random) -> list[tuple[float, dict[str, Any]]]:
    """(time, raw event) of one page view at ``at``: the middleware's event, then (for a page
    that runs tracker.js and was answered 200) the tracker events the beacon endpoint spools."""
    user = f"learner{rng.randint(1, 20)}" if rng.random() < 0.1 else "AnonymousUser"
    raw = page_view_event(view, at, user)
    timed = [(at, raw)]
    if view.browser.js and raw["status_code"] == 200:
        timed.extend(tracker_events(view, raw, at))
    return timed


def raw_traffic(page_views: int, seed: int, mmdb: str) -> list[dict[str, Any]]:
    """The raw events of ``page_views`` page views of the site's mix, in arrival order."""
    rng = random.Random(seed)
    mix = Mix("http://127.0.0.1:8000", rng, ip_pool(mmdb, rng))
    start = time.time() - page_views / NOMINAL_RATE - 10
    timed: list[tuple[float, dict[str, Any]]] = []
    for i in range(page_views):
        timed.extend(view_events(mix.next_view(), start + i / NOMINAL_RATE, rng))
    timed.sort(key=lambda item: item[0])
    return [raw for _, raw in timed]


def fresh_store(url: str, db: str) -> Any:
    """An EventStore on an empty database, prepared as a worker prepares it at start."""
    from pipeline.store import EventStore, load_validator

    store = EventStore(url, db)
    store.client.drop_database(db)
    store.ensure_indexes()
    store.apply_validator(load_validator())
    return store


def time_writes(store: Any, writes: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """store_writes on consecutive batches; writes performed per second of write time."""
    seconds: list[float] = []
    for i in range(0, len(writes), batch):
        chunk = writes[i:i + batch]
        began = time.perf_counter()
        store.store_writes(chunk)
        seconds.append(time.perf_counter() - began)
    total = sum(seconds)
    return {"writes": len(writes), "batches": len(seconds), "seconds": round(total, 3),
            "events_per_s": round(len(writes) / total, 1) if total else None,
            "batch_p50_s": round_or_none(percentile(seconds, 50)), "batch_max_s": round_or_none(max(seconds))}


def measure(url: str, page_views: int, batch: int, seed: int, mmdb: str) -> dict[str, Any]:
    from pipeline.enrich import GeoLocator, enrich_events

    raws = raw_traffic(page_views, seed, mmdb)
    writes, dead = enrich_events(raws, GeoLocator(mmdb, quiet=True))
    kinds: dict[str, int] = {}
    for write in writes:
        kinds[write["_write"]] = kinds.get(write["_write"], 0) + 1
    inserts = [w for w in writes if w["_write"] == "page_view"]
    result = {"page_views": page_views, "batch": batch, "writes_by_kind": kinds, "dead_letters": len(dead),
              "writes_per_page_view": round(len(writes) / page_views, 3), "mmdb": mmdb}
    mix_store = fresh_store(url, "ceiling_mix")
    result["mix"] = time_writes(mix_store, writes, batch)
    result["mix"]["documents"] = mix_store.website_logs.count_documents({})
    # A fresh copy of each insert: store_writes adds stored_at to the documents it is given.
    insert_store = fresh_store(url, "ceiling_inserts")
    result["inserts"] = time_writes(insert_store, [dict(w) for w in inserts], batch)
    for store in (mix_store, insert_store):
        store.client.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mongo", required=True)
    parser.add_argument("--page-views", type=int, default=8000)
    parser.add_argument("--batch", type=int, help="writes per store_writes call (default EVENTLOG_BATCH_SIZE)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--mmdb", default=geolite_city_db() or str(GEOIP_TEST_DB))
    args = parser.parse_args(argv)
    if args.batch is None:
        from pipeline.config import load_settings

        args.batch = load_settings().batch_size
    result = measure(args.mongo, args.page_views, args.batch, args.seed, args.mmdb)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
