"""Dashboard benchmark: the dashboard (rollups) against the same figures from raw logs.

    python -m loadtest.dashboard_bench                    # 1,000,000 events over 30 days (~25 min)
    python -m loadtest.dashboard_bench --events 200000    # a scaled-down run
    python -m loadtest.dashboard_bench --quick            # a smoke run (20,000 events, ~40 s)

Steps, on a fresh nx-27017 (own port, temporary data directory) or --mongo-url:

1. generate ``--events`` enriched ``website_logs`` documents (the shape the store
   worker writes) spread over ``--days`` days ending today, plus exit links and
   tutorial progress, and bulk-insert them in chunks;
2. run the rollups (``pipeline.rollups.run_rollups``, what beat runs): the first run
   (every day), an idle run, and a run after 1000 new events;
3. time the dashboard's data view (``dashboard/data.json`` through Django's test
   client, in-process, as staff) and its HTML page, cold (cache cleared) and warm;
4. time computing the same figures directly from the raw logs: (a) with the fewest
   queries nx can run (a $group per single-field dimension over the whole
   collection, plus one projected pass for the rest), (b) with the rollups' own
   per-day pipelines (what a dashboard without rollups would run per request);
   and time one pipeline of the kind nx-27017 cannot run in SQL, for scale;
5. print a table and write ``loadtest/results/dashboard-<UTC>.json``.

The generator (:func:`generate_events` and friends) also feeds the dashboard tests
and the screenshot in docs/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# ---------------------------------------------------------------- the data set

# (country, code, weight, [(region, city, latitude, longitude), ...])
COUNTRIES: list[tuple[str, str, float, list[tuple[str | None, str | None, float, float]]]] = [
    ("India", "IN", 42, [("Maharashtra", "Mumbai", 19.07, 72.88), ("Karnataka", "Bengaluru", 12.97, 77.59),
                         ("Tamil Nadu", "Chennai", 13.08, 80.27), ("Delhi", "New Delhi", 28.61, 77.21),
                         ("Uttar Pradesh", "Lucknow", 26.85, 80.95), ("West Bengal", "Kolkata", 22.57, 88.36)]),
    ("United States", "US", 12, [("California", "San Jose", 37.34, -121.89), ("Texas", "Austin", 30.27, -97.74),
                                 ("New York", "New York", 40.71, -74.01), ("Washington", "Seattle", 47.61, -122.33)]),
    ("United Kingdom", "GB", 5, [("England", "London", 51.51, -0.13), ("Scotland", "Edinburgh", 55.95, -3.19)]),
    ("Germany", "DE", 4, [("Berlin", "Berlin", 52.52, 13.40), ("Bavaria", "Munich", 48.14, 11.58)]),
    ("Brazil", "BR", 5, [("Sao Paulo", "São Paulo", -23.55, -46.63)]),
    ("Indonesia", "ID", 5, [("Jakarta", "Jakarta", -6.21, 106.85)]),
    ("Nigeria", "NG", 4, [("Lagos", "Lagos", 6.52, 3.38)]),
    ("Kenya", "KE", 3, [("Nairobi County", "Nairobi", -1.29, 36.82)]),
    ("Bangladesh", "BD", 3, [("Dhaka Division", "Dhaka", 23.81, 90.41)]),
    ("Nepal", "NP", 2, [("Bagmati Province", "Kathmandu", 27.72, 85.32)]),
    ("Japan", "JP", 2, [("Tokyo", "Tokyo", 35.68, 139.69)]),
    ("France", "FR", 2, [("Île-de-France", "Paris", 48.86, 2.35)]),
    ("Australia", "AU", 2, [("New South Wales", "Sydney", -33.87, 151.21)]),
    ("Canada", "CA", 2, [("Ontario", "Toronto", 43.65, -79.38)]),
    ("South Africa", "ZA", 1.5, [("Gauteng", "Johannesburg", -26.20, 28.05)]),
    ("Mexico", "MX", 1.5, [("Mexico City", "Mexico City", 19.43, -99.13)]),
    ("Philippines", "PH", 1.5, [("Metro Manila", "Manila", 14.60, 120.98)]),
    ("Sri Lanka", "LK", 1, [("Western Province", "Colombo", 6.93, 79.86)]),
    ("Egypt", "EG", 1, [("Cairo Governorate", "Cairo", 30.04, 31.24)]),
    ("Spain", "ES", 1, [("Madrid", "Madrid", 40.42, -3.70)]),
]
NO_LOCATION_SHARE = 0.03  # private or unknown addresses: location fields are null

# (browser, os, device_family, device_type, weight)
AGENTS: list[tuple[str, str, str, str, float]] = [
    ("Chrome", "Windows", "Other", "PC", 34),
    ("Chrome Mobile", "Android", "Samsung SM-A515F", "Mobile", 18),
    ("Chrome Mobile", "Android", "Redmi Note 10 Pro", "Mobile", 8),
    ("Firefox", "Linux", "Other", "PC", 7),
    ("Firefox", "Windows", "Other", "PC", 5),
    ("Edge", "Windows", "Other", "PC", 6),
    ("Safari", "Mac OS X", "Mac", "PC", 5),
    ("Mobile Safari", "iOS", "iPhone", "Mobile", 8),
    ("Samsung Internet", "Android", "Samsung SM-S911B", "Mobile", 3),
    ("Mobile Safari", "iOS", "iPad", "Tablet", 2),
    ("Chrome", "Linux", "Other", "PC", 3),
    ("Opera", "Windows", "Other", "PC", 1),
]
BOTS: list[tuple[str, float]] = [("Googlebot", 5), ("bingbot", 2), ("YandexBot", 1), ("AhrefsBot", 1)]
BOT_SHARE = 0.08

REFERRERS: list[tuple[str, float]] = [
    ("", 38), ("https://www.google.com/", 30), ("https://www.youtube.com/", 8), ("https://www.bing.com/", 4),
    ("https://duckduckgo.com/", 2), ("https://www.facebook.com/", 3), ("https://t.co/", 1),
    ("https://github.com/", 2), ("https://stackoverflow.com/", 2), ("https://www.reddit.com/", 1),
    ("INTERNAL", 9),
]
EXIT_LINKS: list[tuple[str, float]] = [
    ("https://www.gnu.org/software/bash/", 4), ("https://www.python.org/downloads/", 5),
    ("https://ipython.org/", 2), ("https://matplotlib.org/", 2), ("https://github.com/", 2),
    ("https://www.youtube.com/", 1), ("https://docs.python.org/3/", 3),
]
EXIT_SHARE = 0.03
USERS = [f"learner{i}" for i in range(1, 21)]
LOGGED_IN_SHARE = 0.15
SITE = "http://127.0.0.1:8000"


def _pages() -> list[tuple[str, str, dict[str, str], str, float]]:
    """(path, event_name, view_kwargs, title, weight): the demo's pages and every watch page."""
    from demo.catalogue import CATALOGUE, slug

    pages: list[tuple[str, str, dict[str, str], str, float]] = [
        ("/", "event.home", {}, "Home | eventlog demo", 30),
        ("/tutorial-search/", "event.tutorial.search", {}, "Tutorials | eventlog demo", 18),
        ("/cdcontent/", "event.cdcontent", {}, "CD content | eventlog demo", 3),
        ("/feedback/", "event.feedback", {}, "Feedback | eventlog demo", 1),
        ("/accounts/login/", "event.login", {}, "Log in | eventlog demo", 3),
    ]
    for foss, course in CATALOGUE.items():
        for position, title in enumerate(course["tutorials"]):
            for lang_index, language in enumerate(course["languages"]):
                # Earlier tutorials and the first language are watched more (a course funnel).
                weight = (10 if foss == "Python" else 8) / (1 + 0.45 * position) / (1 + 2 * lang_index)
                kwargs = {"foss": foss, "tutorial": slug(title), "language": language}
                pages.append((f"/watch/{foss}/{slug(title)}/{language}/", "event.video.watch", kwargs,
                              f"{title} | eventlog demo", weight))
    return pages


class _Picker:
    """Weighted choice over a fixed list, fast (cumulative weights + bisect)."""

    def __init__(self, items: list[Any], weights: list[float]) -> None:
        self.items = items
        self.cum = list(_accumulate(weights))

    def __call__(self, rng: random.Random) -> Any:
        return rng.choices(self.items, cum_weights=self.cum)[0]


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total


def _day_weights(days: int) -> list[float]:
    """Traffic per day: slow growth, a weekly rhythm (quieter weekends), some noise."""
    rng = random.Random(7)
    today = datetime.now(UTC).date()
    weights = []
    for i in range(days):
        day = today - timedelta(days=days - 1 - i)
        weekday = 0.65 if day.weekday() >= 5 else 1.0
        weights.append((1 + 0.6 * i / max(1, days)) * weekday * rng.uniform(0.9, 1.1))
    return weights


def generate_events(n: int, days: int = 30, seed: int = 1, end: datetime | None = None) -> Iterator[dict[str, Any]]:
    """``n`` enriched website_logs documents over ``days`` days ending at ``end`` (default now)."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    first_day = datetime(end.year, end.month, end.day, tzinfo=UTC) - timedelta(days=days - 1)
    pages = _pages()
    page = _Picker(pages, [p[4] for p in pages])
    country = _Picker(COUNTRIES, [c[2] for c in COUNTRIES])
    agent = _Picker(AGENTS, [a[4] for a in AGENTS])
    bot = _Picker(BOTS, [b[1] for b in BOTS])
    referrer = _Picker(REFERRERS, [r[1] for r in REFERRERS])
    day_pick = _Picker(list(range(days)), _day_weights(days))
    visitors = max(50, n // 6)  # a visitor makes about six page views over the period
    hour_weights = [0.3, 0.2, 0.2, 0.2, 0.3, 0.5, 0.8, 1.1, 1.4, 1.6, 1.7, 1.7,
                    1.6, 1.6, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.8, 0.6, 0.4]
    hour = _Picker(list(range(24)), hour_weights)
    for _ in range(n):
        day = day_pick(rng)
        when = first_day + timedelta(days=day, hours=hour(rng), seconds=rng.randrange(3600))
        if when > end:  # today's events stop at "now"
            when = end - timedelta(seconds=rng.randrange(1, 3600))
        yield _event(rng, when, page(rng), country(rng), agent(rng), bot(rng), referrer(rng), visitors)


def _event(rng: random.Random, when: datetime, page: tuple, country: tuple, agent: tuple, bot: tuple,
           referrer: tuple, visitors: int) -> dict[str, Any]:
    path, event_name, kwargs, title, _ = page
    is_bot = rng.random() < BOT_SHARE
    visitor = rng.randrange(visitors)
    if is_bot:
        browser, os_family, device, device_type = bot[0], "Other", "Spider", "Bot"
        user, ref = "AnonymousUser", ""
    else:
        browser, os_family, device, device_type, _ = agent
        user = USERS[visitor % len(USERS)] if visitor % 7 == 0 and rng.random() < LOGGED_IN_SHARE * 7 else \
            "AnonymousUser"
        ref = SITE + "/tutorial-search/" if referrer[0] == "INTERNAL" else referrer[0]
    name, code, _, places = country
    if rng.random() < NO_LOCATION_SHARE:
        name = code = region = city = lat = lon = None
    else:
        region, city, lat, lon = places[rng.randrange(len(places))]
    doc: dict[str, Any] = {
        "_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
        "path_info": path, "event_name": event_name, "visited_by": user,
        "ip_address": f"10.{visitor % 250}.{visitor // 250 % 250}.{visitor % 97}", "method": "GET",
        "datetime": when, "referrer": ref, "page_title": title,
        "browser_family": browser, "browser_version": "124", "os_family": os_family, "os_version": "",
        "device_family": device, "device_type": device_type, "first_time_visit": rng.random() < 0.22,
        "country": name, "country_code": code, "region": region, "city": city,
        "latitude": lat, "longitude": lon, "view_args": [], "view_kwargs": dict(kwargs), "post_data": None,
        "source": "middleware", "user_agent": "", "visitor_id": f"v{visitor:07d}", "is_bot": is_bot,
        "status_code": 200, "stored_at": when + timedelta(seconds=rng.uniform(0.2, 3.0)),
    }
    if not is_bot and rng.random() < 0.6:
        doc["visit_duration"] = round(min(3600.0, rng.lognormvariate(3.6, 1.3)), 1)
    return doc


def generate_exit_links(events: list[dict[str, Any]], seed: int = 2) -> list[dict[str, Any]]:
    """Exit link clicks for a share of the given human page views."""
    rng = random.Random(seed)
    target = _Picker(EXIT_LINKS, [e[1] for e in EXIT_LINKS])
    links = []
    for ev in events:
        if ev["is_bot"] or rng.random() >= EXIT_SHARE:
            continue
        links.append({
            "_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex, "exit_link": target(rng)[0],
            "path_info": ev["path_info"], "page_view_id": ev["_id"], "visited_by": ev["visited_by"],
            "datetime": ev["datetime"] + timedelta(seconds=30), "stored_at": ev["stored_at"] + timedelta(seconds=30),
        })
    return links


def generate_progress(seed: int = 3, now: datetime | None = None) -> list[dict[str, Any]]:
    """Tutorial progress of learner1..20: earlier tutorials started and finished more often."""
    from demo.catalogue import CATALOGUE

    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    docs = []
    for user in USERS:
        for foss, course in CATALOGUE.items():
            for language in course["languages"][: 1 + (rng.random() < 0.3)]:
                if rng.random() < 0.35:
                    continue  # never started this course
                for position, (title, length) in enumerate(zip(course["tutorials"], course["lengths"],
                                                               strict=True)):
                    if rng.random() > 0.92 ** position * 0.95:
                        break  # dropped out of the course here
                    total = math.ceil(length / 60)
                    completed = rng.random() < 0.75
                    watched = total if completed else rng.randrange(1, total + 1)
                    visits = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
                    manual = completed and rng.random() < 0.1
                    docs.append({
                        "username": user, "foss": foss, "language": language, "tutorial": title,
                        "video_length": length, "total_minutes": total,
                        "minutes_watched": list(range(int(total * 0.8) if manual else watched)),
                        "resume_position": 60 * (watched - 1), "visits": visits,
                        "visit_ids": [uuid.uuid4().hex for _ in range(visits)],
                        "completed": completed, "completed_at": now - timedelta(days=rng.randrange(30))
                        if completed else None, "manual": manual, "marked_at": now if manual else None,
                        "first_watched_at": now - timedelta(days=rng.randrange(30, 40)),
                        "last_report_at": now - timedelta(days=rng.randrange(30)),
                    })
    return docs


def load_dataset(db: Any, events: int, days: int = 30, chunk: int = 10_000, seed: int = 1,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Insert the generated data set into ``db`` in chunks (no indexes yet: faster); counts and timings."""
    started = time.perf_counter()
    inserted = exits = 0
    batch: list[dict[str, Any]] = []
    for doc in generate_events(events, days, seed):
        batch.append(doc)
        if len(batch) >= chunk:
            inserted, exits = _flush(db, batch, inserted, exits)
            batch = []
            if progress:
                progress(inserted)
    if batch:
        inserted, exits = _flush(db, batch, inserted, exits)
    insert_seconds = time.perf_counter() - started
    db.tutorial_progress_logs.insert_many(generate_progress())
    return {"events": inserted, "exit_links": exits, "insert_seconds": round(insert_seconds, 2),
            "events_per_second": round(inserted / insert_seconds) if insert_seconds else None}


def _flush(db: Any, batch: list[dict[str, Any]], inserted: int, exits: int) -> tuple[int, int]:
    db.website_logs.insert_many(batch, ordered=False)
    links = generate_exit_links(batch, seed=inserted)
    if links:
        db.exit_link_logs.insert_many(links, ordered=False)
    return inserted + len(batch), exits + len(links)


def ensure_indexes(db: Any) -> None:
    """The indexes the store worker creates (the rollups select by datetime and stored_at)."""
    from pipeline import progress
    from pipeline.store import WEBSITE_LOGS_INDEXES

    for keys, options in WEBSITE_LOGS_INDEXES:
        db.website_logs.create_index(keys, **options)
    db.exit_link_logs.create_index("datetime")
    db.exit_link_logs.create_index("stored_at")
    progress.ensure_indexes(db.tutorial_progress_logs)


# ---------------------------------------------------------------- proposed rollups fix (bench only)
#
# pipeline/rollups.py used to run six pipelines per chunk that nx-27017 cannot run
# in SQL ($project + $concat for multi-field keys, $bucket); its Python fallback
# copies the whole collection for each (151 s per chunk at 1M events: ~54 hours for
# a first rollup). Those are now counted in Python (rollups._python_counts); the
# probe below times one such pipeline for scale.


# ---------------------------------------------------------------- measurements


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {"n": len(samples), "median_ms": round(1000 * statistics.median(ordered), 2),
            "min_ms": round(1000 * ordered[0], 2), "max_ms": round(1000 * ordered[-1], 2)}


def setup_django(mongo_url: str, mongo_db: str, tmp: Path) -> Any:
    """Django in this process (demo settings, a private SQLite and spool); a logged-in staff client."""
    os.environ.update(DJANGO_SETTINGS_MODULE="demo.settings", EVENTLOG_VAR_DIR=str(tmp / "var"),
                      EVENTLOG_SPOOL_DIR=str(tmp / "spool"), EVENTLOG_MONGO_URL=mongo_url,
                      EVENTLOG_MONGO_DB=mongo_db, EVENTLOG_BROKER_URL="redis://127.0.0.1:9/0")
    (tmp / "var").mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    staff, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True})
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(staff)
    return client


def time_dashboard(client: Any, db: Any, start: date, end: date, repeat: int) -> dict[str, Any]:
    """The dashboard's data view and page through Django, cold (cache cleared) and warm."""
    from django.core.cache import cache

    from pipeline.rollups import read_daily, read_tutorials

    query = f"start={start}&end={end}"
    results: dict[str, Any] = {}
    for name, url in (("data_view", f"/eventlog/dashboard/data.json?{query}"),
                      ("page", f"/eventlog/dashboard/?{query}")):
        cold, warm = [], []
        for _ in range(repeat):
            cache.clear()
            seconds, answer = _timed(lambda u=url: client.get(u))
            assert answer.status_code == 200, answer.status_code
            cold.append(seconds)
            warm.append(_timed(lambda u=url: client.get(u))[0])
        results[name] = {"cold": _summary(cold), "warm": _summary(warm), "bytes": len(answer.content)}
    reads = [_timed(lambda: (read_daily(db, start, end, limit=100), read_tutorials(db)))[0] for _ in range(repeat)]
    results["read_functions"] = _summary(reads)
    figures = client.get(f"/eventlog/dashboard/data.json?{query}&limit=100").json()
    results["page_views"] = figures["kpis"]["page_views"]
    results["top_countries"] = [(r["country"], r["count"]) for r in figures["tables"]["countries"][:5]]
    return results


def raw_per_day(db: Any, start: date, end: date, budget: float) -> dict[str, Any]:
    """The same figures from website_logs with the rollups' own per-day pipelines (no stats_*).

    Stops after ``budget`` seconds and extrapolates from the days done (reported).
    """
    from pipeline import rollups

    started = time.perf_counter()
    page_views = 0
    dims: dict[str, Counter] = {}
    done = 0
    days = list(rollups._days_between(start, end))
    for day in days:
        scalars, counts = rollups.compute_day(db, day)
        page_views += scalars["page_views"]
        for name, counter in counts.items():
            dims.setdefault(name, Counter()).update(counter)
        done += 1
        if time.perf_counter() - started > budget:
            break
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "days_done": done, "days": len(days),
            "seconds_all_days": round(seconds * len(days) / done, 2) if done else None,
            "extrapolated": done < len(days), "page_views": page_views if done == len(days) else None}


def raw_whole_collection(db: Any, start: date, end: date) -> dict[str, Any]:
    """The same figures with the fewest queries nx-27017 can run: one $group per single-field
    dimension over the whole collection (SQL; no date filter, as the range covers all data),
    and one projected pass for what nx cannot group in SQL (per-day series, multi-field
    dimensions, durations), read a day at a time (nx stalls on a 1M-document cursor)."""
    from pipeline import rollups

    logs = db[rollups.WEBSITE_LOGS]
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for dim in rollups.DIMENSIONS:
        if len(dim.parts) == 1:
            coll = db[dim.collection]
            seconds, _ = _timed(lambda c=coll, d=dim: list(c.aggregate(
                [{"$match": d.match}, {"$group": {"_id": f"${d.key}", "n": {"$sum": 1}}}])))
            timings[f"group {dim.name}"] = round(seconds, 2)
    fields = dict.fromkeys((*rollups._COUNTED_FIELDS, "datetime", "visitor_id", "visited_by", "first_time_visit"), 1)
    pass_started = time.perf_counter()
    page_views = 0
    for day in rollups._days_between(start, end):
        first, last = rollups.day_bounds(day)
        docs = [d for d in logs.find({"datetime": {"$gte": first, "$lt": last}}, fields) if d.get("is_bot") is not True]
        page_views += len(docs)
        len({d.get("visitor_id") for d in docs})  # the day's unique visitors
        rollups._python_counts(docs)
    timings["projected pass, a day at a time"] = round(time.perf_counter() - pass_started, 2)
    return {"seconds": round(time.perf_counter() - started, 2), "page_views": page_views, "breakdown": timings}


def probe_stock(db: Any, start: date, end: date) -> dict[str, Any]:
    """One of the six stock pipelines that nx runs in its Python fallback, on one chunk of ids,
    and what the stock first rollup would take at that rate (6 of them per chunk, per day)."""
    from pipeline import rollups

    logs = db[rollups.WEBSITE_LOGS]
    ids = next(rollups._ids_in_day(logs, end - timedelta(days=1), rollups.ID_CHUNK), [])
    seconds, _ = _timed(lambda: rollups._count_by(logs, ids, rollups.HUMAN, ["country", "country_code"]))
    days = db[rollups.STATS_DAILY].find({"day": {"$gte": start.isoformat(), "$lte": end.isoformat()}})
    chunks = sum(-(-(d.get("all_views") or 0) // rollups.ID_CHUNK) for d in days)
    return {"slow_pipeline_seconds": round(seconds, 2), "chunk_ids": len(ids), "chunks": chunks,
            "stock_first_rollup_seconds_estimate": round(seconds * 6 * chunks)}


# ---------------------------------------------------------------- the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="20,000 events, 3 repeats")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per measurement")
    parser.add_argument("--chunk", type=int, default=10_000, help="documents per insert_many")
    parser.add_argument("--mongo-url", default="", help="use this server (a fresh database) instead of nx-27017")
    parser.add_argument("--raw-budget", type=float, default=900.0,
                        help="seconds for the per-day raw baseline before it is extrapolated")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeat = 20_000, 3
    return args


def start_store(args: argparse.Namespace, tmp: Path) -> tuple[str, str, Any]:
    from deploy.stack import free_port, nx_proc, wait_for_port

    if args.mongo_url:
        return args.mongo_url, f"dashboard_bench_{uuid.uuid4().hex[:8]}", None
    port = free_port()
    proc = nx_proc(port, tmp / "nx", tmp / "nx.log").start()
    wait_for_port("127.0.0.1", port, 60, "nx-27017")
    return f"mongodb://127.0.0.1:{port}", "logs", proc


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import pymongo

    from pipeline import rollups

    url, name, proc = start_store(args, tmp)
    # nx-27017 answers nothing else while it runs a long query: without long timeouts the
    # client's monitor gives up on it and cancels the query in flight.
    client = pymongo.MongoClient(url, tz_aware=True, socketTimeoutMS=3_600_000, connectTimeoutMS=600_000,
                                 serverSelectionTimeoutMS=600_000, heartbeatFrequencyMS=600_000)
    db = client[name]
    try:
        result: dict[str, Any] = {"events_requested": args.events, "days": args.days,
                                  "store": "nx-27017" if proc else url, "cpus": os.cpu_count()}
        print(f"loading {args.events:,} events over {args.days} days into {result['store']} ...", flush=True)
        result["load"] = load_dataset(db, args.events, args.days, args.chunk, progress=_progress(args.events))
        result["load"]["index_seconds"] = round(_timed(lambda: ensure_indexes(db))[0], 2)
        print(f"  {result['load']}", flush=True)

        print("rollups (first run: every day) ...", flush=True)
        seconds, summary = _timed(lambda: rollups.run_rollups(db))
        result["rollups"] = {"first_run_seconds": round(seconds, 2), "days": len(summary["days"]),
                             "stats_daily_dim_docs": db[rollups.STATS_DAILY_DIM].estimated_document_count()}
        result["rollups"]["idle_run_seconds"] = round(_timed(lambda: rollups.run_rollups(db))[0], 2)
        late = [dict(e, stored_at=datetime.now(UTC)) for e in generate_events(1000, 1, seed=77)]
        db.website_logs.insert_many(late)
        result["rollups"]["incremental_run_1000_new_seconds"] = round(_timed(lambda: rollups.run_rollups(db))[0], 2)
        print(f"  {result['rollups']}", flush=True)

        end = datetime.now(UTC).date()
        start = end - timedelta(days=args.days - 1)
        result["range"] = {"start": start.isoformat(), "end": end.isoformat()}
        print("dashboard (Django test client, in-process) ...", flush=True)
        staff = setup_django(url, name, tmp)
        result["dashboard"] = time_dashboard(staff, db, start, end, args.repeat)
        print(f"  {result['dashboard']}", flush=True)

        phases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("raw_whole_collection", lambda: raw_whole_collection(db, start, end)),
            ("raw_per_day", lambda: raw_per_day(db, start, end, args.raw_budget)),
        ]
        phases.append(("stock_probe", lambda: probe_stock(db, start, end)))
        for key, phase in phases:
            print(f"{key} ...", flush=True)
            try:
                result[key] = phase()
            except Exception as exc:  # noqa: BLE001 - report it and keep the other figures
                result[key] = {"error": f"{exc.__class__.__name__}: {exc}", "seconds": None}
            print(f"  {result[key]}", flush=True)
        result["consistent"] = result["raw_whole_collection"].get("page_views") == result["dashboard"]["page_views"]
        return result
    finally:
        client.close()
        if proc:
            proc.stop(timeout=30)


def _progress(total: int) -> Callable[[int], None]:
    step = max(total // 10, 1)
    started = time.perf_counter()

    def report(done: int) -> None:
        if done % step < 10_000 or done == total:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"  {done:,} / {total:,} inserted ({rate:,.0f}/s)", flush=True)

    return report


def print_table(result: dict[str, Any]) -> None:
    d, raw_all, raw_days = result["dashboard"], result["raw_whole_collection"], result["raw_per_day"]
    rows = [
        ("dashboard data view, cold (cache cleared)", d["data_view"]["cold"]["median_ms"] / 1000),
        ("dashboard data view, warm (cached)", d["data_view"]["warm"]["median_ms"] / 1000),
        ("dashboard page (HTML), cold", d["page"]["cold"]["median_ms"] / 1000),
        ("read_daily + read_tutorials", d["read_functions"]["median_ms"] / 1000),
        ("raw logs: whole collection, best case", raw_all["seconds"]),
        ("raw logs: per-day pipelines" + (" (extrapolated)" if raw_days.get("extrapolated") else ""),
         raw_days.get("seconds_all_days")),
    ]
    probe = result.get("stock_probe") or {}
    if probe.get("stock_first_rollup_seconds_estimate") is not None:
        rows.append(("stock rollups' first run (estimate, for scale)", probe["stock_first_rollup_seconds_estimate"]))
    load, roll = result["load"], result["rollups"]
    print()
    print(f"{load['events']:,} events over {result['days']} days, {result['store']}")
    print(f"insert {load['insert_seconds']} s ({load['events_per_second']:,}/s) + indexes {load['index_seconds']} s;"
          f" first rollup {roll['first_run_seconds']} s, idle run {roll['idle_run_seconds']} s,"
          f" 1000 new events {roll['incremental_run_1000_new_seconds']} s")
    print(f"{'figures for ' + result['range']['start'] + ' .. ' + result['range']['end']:<48} {'seconds':>10} "
          f"{'vs cold view':>13}")
    base = rows[0][1] or 1e-9
    for label, seconds in rows:
        shown = "-" if seconds is None else f"{seconds:10.3f}"
        ratio = "" if seconds is None else f"{seconds / base:12.0f}x"
        print(f"{label:<48} {shown:>10} {ratio:>13}")
    print(f"same page views from rollups and raw logs: {result['consistent']} ({d['page_views']:,})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="eventlog-dashboard-bench-") as tmp:
        result = run(args, Path(tmp))
    result["started"] = started.isoformat()
    result["seconds_total"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    print_table(result)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"dashboard-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"results: {path.relative_to(RESULTS.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
