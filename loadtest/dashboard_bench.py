"""Dashboard benchmark: the incremental rollups and the dashboard's reads.

    python -m loadtest.dashboard_bench                    # the full run (1,000,000 events over 30 days)
    python -m loadtest.dashboard_bench --events 200000    # a scaled-down 30-day data set
    python -m loadtest.dashboard_bench --quick            # a smoke run (small data sets)

Steps, each on a fresh nx-27017 (own port, temporary data directory) or --mongo-url:

1. **cost follows the new events**: a day that already holds ``--day-small`` (30,000)
   events, rolled up; then five minutes of 1,000 new events each (on a clock of their own, a
   beat interval apart: each run finds its minute, the previous minute again through the
   safety overlap, the tracker's engaged time merged into the previous minute's page views,
   and visitors of the day coming back), a timed run after each; the
   same with a day of ``--day-large`` (300,000) events. The ratio of the two medians is
   the point (the old engine recomputed the whole day: 9.7 s vs 113 s);
2. **a 30-day data set** of ``--events`` generated ``website_logs`` documents (the
   shape the store worker writes, in visits, some from campaign links), exit links and
   tutorial progress: the first rollup (every event), an idle run, a run after 1,000
   new events; unique visitors over the 30 days (and 7) against the exact count;
3. the dashboard's data view (``dashboard/data.json`` through Django's test client,
   in-process, as staff) and its HTML page, cold (cache cleared) and warm; the read
   API alone; the live view's query;
4. print a table, write it to ``loadtest/results/dashboard-<UTC>.txt`` and everything
   measured to ``loadtest/results/dashboard-<UTC>.json``.

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


CAMPAIGNS: list[tuple[str | None, str | None, str | None, float]] = [
    ("newsletter", "email", "dec-2026", 4), ("youtube", "video", "python-series", 3),
    ("twitter", "social", None, 2), ("partner-college", "referral", "fdp-2026", 1),
]
CAMPAIGN_SHARE = 0.1  # visits whose landing page carries utm_* parameters
PAGE_GAP = (10, 240)  # seconds between two page views of a visit


def generate_events(n: int, days: int = 30, seed: int = 1, end: datetime | None = None) -> Iterator[dict[str, Any]]:
    """``n`` enriched website_logs documents over ``days`` days ending at ``end`` (default now).

    Page views come in visits: a visitor lands (now and then from a campaign link, with
    ``utm_*``), then views a few more pages 10 s - 4 min apart; a visitor makes about
    six page views over the period, in one or more visits.
    """
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    first_day = datetime(end.year, end.month, end.day, tzinfo=UTC) - timedelta(days=days - 1)
    pages = _pages()
    page = _Picker(pages, [p[4] for p in pages])
    country = _Picker(COUNTRIES, [c[2] for c in COUNTRIES])
    agent = _Picker(AGENTS, [a[4] for a in AGENTS])
    bot = _Picker(BOTS, [b[1] for b in BOTS])
    referrer = _Picker(REFERRERS, [r[1] for r in REFERRERS])
    campaign = _Picker(CAMPAIGNS, [c[3] for c in CAMPAIGNS])
    day_pick = _Picker(list(range(days)), _day_weights(days))
    visitors = max(50, n // 6)  # a visitor makes about six page views over the period
    hour_weights = [0.3, 0.2, 0.2, 0.2, 0.3, 0.5, 0.8, 1.1, 1.4, 1.6, 1.7, 1.7,
                    1.6, 1.6, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.8, 0.6, 0.4]
    hour = _Picker(list(range(24)), hour_weights)
    made = 0
    while made < n:
        day = day_pick(rng)
        when = first_day + timedelta(days=day, hours=hour(rng), seconds=rng.randrange(3600))
        if when > end:  # today's events stop at "now": spread over the part of today that has passed
            today = datetime(end.year, end.month, end.day, tzinfo=UTC)
            when = today + (end - today) * rng.random()
        visitor = rng.randrange(visitors)
        length = min(n - made, 1 + int(rng.expovariate(1 / 2.5)))
        utm = campaign(rng)[:3] if rng.random() < CAMPAIGN_SHARE else None
        is_bot = rng.random() < BOT_SHARE
        who = (country(rng), agent(rng), bot(rng), referrer(rng))
        for step in range(length):
            if step:
                when += timedelta(seconds=rng.uniform(*PAGE_GAP))
                if when > end:
                    break
            doc = _event(rng, when, page(rng), *who, visitor, is_bot)
            if step:
                doc["first_time_visit"] = False
                doc["referrer"] = SITE + "/"  # the visit's previous page
            elif utm:
                doc.update({f: v for f, v in zip(("utm_source", "utm_medium", "utm_campaign"), utm, strict=True) if v})
            made += 1
            yield doc


def _event(rng: random.Random, when: datetime, page: tuple, country: tuple, agent: tuple, bot: tuple,
           referrer: tuple, visitor: int, is_bot: bool) -> dict[str, Any]:
    path, event_name, kwargs, title, _ = page
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
    doc["updated_ts"] = doc["stored_at"].timestamp()  # as the store writes it (the rollups select by it)
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
                 progress: Callable[[int], None] | None = None,
                 seen: dict[date, set[str]] | None = None) -> dict[str, Any]:
    """Insert the generated data set into ``db`` in chunks (no indexes yet: faster); counts and timings.

    ``seen``, when given, collects the human visitor ids per day (the exact answer to range uniques).
    """
    started = time.perf_counter()
    inserted = exits = 0
    batch: list[dict[str, Any]] = []
    for doc in generate_events(events, days, seed):
        if seen is not None and not doc["is_bot"]:
            seen.setdefault(doc["datetime"].date(), set()).add(doc["visitor_id"])
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
    from pipeline.rollups.read import _CACHE as read_cache

    query = f"start={start}&end={end}"
    results: dict[str, Any] = {}
    for name, url in (("data_view", f"/eventlog/dashboard/data.json?{query}"),
                      ("page", f"/eventlog/dashboard/?{query}")):
        cold, warm = [], []
        for _ in range(repeat):
            cache.clear()
            read_cache.clear()  # the read API's own per-process cache of day documents: cold means cold
            seconds, answer = _timed(lambda u=url: client.get(u))
            assert answer.status_code == 200, answer.status_code
            cold.append(seconds)
            warm.append(_timed(lambda u=url: client.get(u))[0])
        results[name] = {"cold": _summary(cold), "warm": _summary(warm), "bytes": len(answer.content)}
    reads = []
    for _ in range(repeat):
        read_cache.clear()
        reads.append(_timed(lambda: (read_daily(db, start, end, limit=100), read_tutorials(db)))[0])
    results["read_functions"] = _summary(reads)
    figures = client.get(f"/eventlog/dashboard/data.json?{query}&limit=100").json()
    results["page_views"] = figures["kpis"]["page_views"]
    results["top_countries"] = [(r["country"], r["count"]) for r in figures["tables"]["countries"][:5]]
    return results


# ---------------------------------------------------------------- the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the 30-day data set")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--day-small", type=int, default=30_000, help="events already in the day (small)")
    parser.add_argument("--day-large", type=int, default=300_000, help="events already in the day (large)")
    parser.add_argument("--new", type=int, default=1000, help="new events before the timed incremental run")
    parser.add_argument("--part", choices=("all", "days", "month"), default="all",
                        help="days: only the small/large day runs; month: only the 30-day data set")
    parser.add_argument("--quick", action="store_true", help="small data sets, 3 repeats")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per measurement")
    parser.add_argument("--chunk", type=int, default=10_000, help="documents per insert_many")
    parser.add_argument("--mongo-url", default="", help="use this server (a fresh database) instead of nx-27017")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.day_small, args.day_large, args.repeat = 20_000, 3_000, 30_000, 3
    return args


def start_store(args: argparse.Namespace, tmp: Path) -> tuple[str, str, Any]:
    from deploy.stack import free_port, nx_proc, wait_for_port

    if args.mongo_url:
        return args.mongo_url, f"dashboard_bench_{uuid.uuid4().hex[:8]}", None
    port = free_port()
    data = tmp / f"nx-{port}"
    data.mkdir()
    proc = nx_proc(port, data, data / "nx.log").start()
    wait_for_port("127.0.0.1", port, 60, "nx-27017")
    return f"mongodb://127.0.0.1:{port}", "logs", proc


def connect(url: str) -> Any:
    import pymongo

    # nx-27017 answers nothing else while it runs a long query: without long timeouts the
    # client's monitor gives up on it and cancels the query in flight.
    return pymongo.MongoClient(url, tz_aware=True, socketTimeoutMS=3_600_000, connectTimeoutMS=600_000,
                               serverSelectionTimeoutMS=600_000, heartbeatFrequencyMS=600_000)


def new_events(n: int, seed: int, minute_start: datetime, visitor_offset: int = 0) -> list[dict[str, Any]]:
    """``n`` page views of the minute from ``minute_start``, stored at its end (what a run after a
    beat interval finds), by visitors ``visitor_offset`` and on (returning visitors of the day)."""
    rng = random.Random(seed)
    stored = minute_start + timedelta(seconds=60)
    docs = []
    for doc in generate_events(n, 1, seed=seed, end=stored):
        doc["datetime"] = minute_start + timedelta(seconds=rng.uniform(0, 59))
        doc["stored_at"] = stored
        doc["updated_ts"] = stored.timestamp()
        doc["visitor_id"] = f"v{int(doc['visitor_id'][1:]) + visitor_offset:07d}"
        docs.append(doc)
    return docs


INCREMENTAL_REPEATS = 5


def timed_run(db: Any, now: datetime | None = None) -> dict[str, Any]:
    from pipeline import rollups

    seconds, result = _timed(lambda: rollups.run_rollups(db, now=now))
    return {"seconds": round(seconds, 3), "events": result["events"], "buckets": result["buckets"],
            "visits": result["visits"], "days": len(result["days"])}


def day_scenario(args: argparse.Namespace, tmp: Path, size: int) -> dict[str, Any]:
    """A day that holds ``size`` events, rolled up; then minutes of ``args.new`` new events each.

    The minutes run on a clock of their own (a beat interval apart, the first one starting where
    the day's events end), so each run finds what a run on a busy site finds after a minute: the
    minute's events, the previous minute's again (the safety overlap), a bucket holding the
    traffic of its two minutes, the tracker's engaged time for the previous minute's page views
    (merged into them, as the store merges beacons), and visitors of the day coming back (other
    ones each minute).
    """
    from pymongo import UpdateOne

    url, name, proc = start_store(args, tmp)
    client = connect(url)
    db = client[name]
    try:
        now = datetime.now(UTC)
        end = now - timedelta(minutes=INCREMENTAL_REPEATS + 2)
        started = time.perf_counter()
        batch: list[dict[str, Any]] = []
        for doc in generate_events(size, 1, seed=size, end=end):
            batch.append(doc)
            if len(batch) >= args.chunk:
                db.website_logs.insert_many(batch, ordered=False)
                batch = []
        if batch:
            db.website_logs.insert_many(batch, ordered=False)
        ensure_indexes(db)
        out: dict[str, Any] = {"events_in_day": size, "load_seconds": round(time.perf_counter() - started, 1)}
        out["first_run"] = timed_run(db, end + timedelta(seconds=1))
        out["idle_run"] = timed_run(db, end + timedelta(seconds=2))
        # Five minutes (a run each): one run of about a second is at the mercy of a shared machine.
        runs = []
        engaged: dict[str, float] = {}  # the tracker's engaged time of last minute's page views
        for minute in range(INCREMENTAL_REPEATS):
            start = end + timedelta(minutes=minute)
            fresh = new_events(args.new, 7 + minute, start, visitor_offset=minute * max(50, args.new // 6))
            db.website_logs.insert_many([{k: v for k, v in d.items() if k != "visit_duration"} for d in fresh])
            if engaged:  # merged into their page views a minute later, as the tracker's beacons are
                stamp = (start + timedelta(seconds=60)).timestamp()
                db.website_logs.bulk_write([UpdateOne({"_id": i}, {"$set": {"visit_duration": s, "updated_ts": stamp}})
                                            for i, s in engaged.items()], ordered=False)
            engaged = {d["_id"]: d["visit_duration"] for d in fresh if "visit_duration" in d}
            runs.append(timed_run(db, start + timedelta(seconds=61)))
        out["new_events"] = args.new
        out["incremental_runs"] = runs
        out["incremental_run"] = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]  # the median
        print(f"  day of {size:,}: {out}", flush=True)
        return out
    finally:
        client.close()
        if proc:
            proc.stop(timeout=30)


def uniques(db: Any, start: date, end: date, seen: dict[date, set[str]]) -> dict[str, Any]:
    """Unique visitors of the range: the read API against the exact count (from the generator)."""
    from pipeline.rollups import read_summary

    exact = len(set().union(*(ids for day, ids in seen.items() if start <= day <= end)))
    seconds, summary = _timed(lambda: read_summary(db, start, end))
    error = 100 * (summary["unique_visitors"] - exact) / exact if exact else 0
    return {"start": start.isoformat(), "end": end.isoformat(), "exact": exact, "rollups": summary["unique_visitors"],
            "error_pct": round(error, 3), "estimated": not summary["uniques_exact"],
            "visitor_days": sum(len(ids) for day, ids in seen.items() if start <= day <= end),
            "read_summary_seconds": round(seconds, 3)}


def time_live(db: Any, repeat: int) -> dict[str, Any] | None:
    try:
        from pipeline import live
    except ImportError:
        return None
    samples = [_timed(lambda: live.live_figures(db))[0] for _ in range(repeat)]
    return _summary(samples)


def month_scenario(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from pipeline import rollups

    url, name, proc = start_store(args, tmp)
    client = connect(url)
    db = client[name]
    try:
        result: dict[str, Any] = {"events_requested": args.events, "days": args.days}
        print(f"loading {args.events:,} events over {args.days} days ...", flush=True)
        seen: dict[date, set[str]] = {}
        result["load"] = load_dataset(db, args.events, args.days, args.chunk, progress=_progress(args.events),
                                      seen=seen)
        result["load"]["index_seconds"] = round(_timed(lambda: ensure_indexes(db))[0], 2)
        print(f"  {result['load']}", flush=True)
        # The floor of any first run: the store handing over every page view once, nothing else.
        read_seconds, read_count = _timed(lambda: sum(1 for _ in db.website_logs.find({}, batch_size=10_000)))
        result["read_all"] = {"seconds": round(read_seconds, 1), "events": read_count}
        print(f"  reading them all once: {result['read_all']}", flush=True)
        print("rollups: first run (every event), idle run, run after new events ...", flush=True)
        result["first_run"] = timed_run(db)
        result["idle_run"] = timed_run(db)
        fresh = new_events(args.new, 78, datetime.now(UTC) - timedelta(seconds=60))
        for doc in fresh:
            if not doc["is_bot"]:
                seen.setdefault(doc["datetime"].date(), set()).add(doc["visitor_id"])
        db.website_logs.insert_many(fresh)
        result["incremental_run"] = timed_run(db)
        result["stats_bytes"] = {n: db.command("collstats", n).get("size") for n in (
            rollups.STATS_BUCKETS, rollups.STATS_VISITS, rollups.STATS_HOURLY, rollups.STATS_DAILY)
        } if not proc else None
        print(f"  {result['first_run']} {result['idle_run']} {result['incremental_run']}", flush=True)
        end = datetime.now(UTC).date()
        start = end - timedelta(days=args.days - 1)
        result["range"] = {"start": start.isoformat(), "end": end.isoformat()}
        print("unique visitors against the exact count ...", flush=True)
        result["uniques"] = [uniques(db, start, end, seen), uniques(db, end - timedelta(days=6), end, seen)]
        print(f"  {result['uniques']}", flush=True)
        print("dashboard (Django test client, in-process) ...", flush=True)
        staff = setup_django(url, name, tmp)
        result["dashboard"] = time_dashboard(staff, db, start, end, args.repeat)
        result["live"] = time_live(db, args.repeat)
        print(f"  {result['dashboard']} live {result['live']}", flush=True)
        return result
    finally:
        client.close()
        if proc:
            proc.stop(timeout=30)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"store": "nx-27017" if not args.mongo_url else "MongoDB", "cpus": os.cpu_count()}
    if args.part in ("all", "days"):
        print("1,000 new events into a small and a large day ...", flush=True)
        result["day_small"] = day_scenario(args, tmp, args.day_small)
        result["day_large"] = day_scenario(args, tmp, args.day_large)
        small, large = result["day_small"]["incremental_run"], result["day_large"]["incremental_run"]
        result["day_ratio"] = round(large["seconds"] / small["seconds"], 2) if small["seconds"] else None
    if args.part in ("all", "month"):
        result["month"] = month_scenario(args, tmp)
    return result


def _progress(total: int) -> Callable[[int], None]:
    step = max(total // 10, 1)
    started = time.perf_counter()

    def report(done: int) -> None:
        if done % step < 10_000 or done == total:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"  {done:,} / {total:,} inserted ({rate:,.0f}/s)", flush=True)

    return report


def table(result: dict[str, Any]) -> str:
    lines = [f"dashboard bench, {result['store']}, {result['cpus']} cores, started {result.get('started', '')}", ""]

    def row(label: str, value: Any, note: str = "") -> None:
        lines.append(f"| {label:<62} | {value!s:>12} | {note}")

    lines.append(f"| {'measurement':<62} | {'value':>12} | note")
    lines.append(f"|{'-' * 64}|{'-' * 14}|------")
    if "day_small" in result:
        _day_rows(result, row)
    if "month" in result:
        _month_rows(result["month"], row)
    return "\n".join(lines)


def _day_rows(result: dict[str, Any], row: Callable[..., None]) -> None:
    small, large = result["day_small"], result["day_large"]
    for name, day in (("small", small), ("large", large)):
        run_ = day["incremental_run"]
        each = " / ".join(f"{r['seconds']:.2f}" for r in day.get("incremental_runs", []))
        row(f"run after {day['new_events']:,} new events, day of {day['events_in_day']:,} ({name})",
            f"{run_['seconds']:.3f} s", f"median of {each} s; {run_['events']} events read, {run_['buckets']} buckets")
    row("  ratio large / small (target <= 1.5)", result["day_ratio"], "the old engine: 11.6")
    row(f"  first run of the day of {small['events_in_day']:,} / {large['events_in_day']:,}",
        f"{small['first_run']['seconds']:.1f} / {large['first_run']['seconds']:.1f} s", "")
    row(f"  idle run, day of {small['events_in_day']:,} / {large['events_in_day']:,}",
        f"{small['idle_run']['seconds']:.3f} / {large['idle_run']['seconds']:.3f} s", "")


def _month_rows(month: dict[str, Any], row: Callable[..., None]) -> None:
    d = month["dashboard"]
    load = month["load"]
    row(f"load {load['events']:,} events over {month['days']} days", f"{load['insert_seconds']:.0f} s",
        f"{load['events_per_second']:,}/s")
    row(f"first rollup of {load['events']:,} events (target <= 120 s)", f"{month['first_run']['seconds']:.1f} s",
        "the old engine: 503 s for 1M")
    if month.get("read_all"):
        floor = month["read_all"]["seconds"]
        row("  the store reading every page view once, nothing else", f"{floor:.1f} s",
            f"first rollup / this = {month['first_run']['seconds'] / floor:.1f}" if floor else "")
    row("idle run", f"{month['idle_run']['seconds']:.3f} s", "")
    row(f"run after {month['incremental_run']['events']:,} events read (1,000 new)",
        f"{month['incremental_run']['seconds']:.3f} s", "")
    for u in month["uniques"]:
        row(f"unique visitors {u['start']}..{u['end']}: rollups vs exact",
            f"{u['rollups']:,} / {u['exact']:,}", f"error {u['error_pct']:+.2f} %"
            + (" (HyperLogLog)" if u["estimated"] else " (exact sets)") + f"; sum of daily: {u['visitor_days']:,}")
    row("dashboard data view, 30 days, cold (target <= 0.5 s)", f"{d['data_view']['cold']['median_ms'] / 1000:.3f} s",
        "median")
    row("dashboard data view, 30 days, warm", f"{d['data_view']['warm']['median_ms'] / 1000:.3f} s", "")
    row("dashboard HTML page, cold / warm", f"{d['page']['cold']['median_ms'] / 1000:.3f} / "
        f"{d['page']['warm']['median_ms'] / 1000:.3f} s", "")
    row("read_daily + read_tutorials", f"{d['read_functions']['median_ms'] / 1000:.3f} s", "")
    if month.get("live"):
        row("live view query (pipeline.live.live_figures)", f"{month['live']['median_ms'] / 1000:.3f} s", "median")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="eventlog-dashboard-bench-") as tmp:
        result = run(args, Path(tmp))
    result["started"] = started.isoformat()
    result["seconds_total"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    text = table(result)
    print()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = f"dashboard-{started.strftime('%Y%m%dT%H%M%SZ')}"
    (RESULTS / f"{stem}.txt").write_text(text + "\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"results: loadtest/results/{stem}.txt (.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
