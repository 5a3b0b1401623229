"""The dashboard's figures for a date range, from the rollups' read API only.

Nothing here reads ``website_logs``: a page costs the same with a thousand or a
hundred million events stored. Results are cached (Django's cache) per range
until the next rollup run moves the watermark.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.core.cache import cache

from django_hook.conf import eventlog_settings
from django_hook.dashboard.ranges import DateRange
from django_hook.dashboard.tables import TABLES
from pipeline import rollups
from pipeline.store import process_client

ALL_ROWS = rollups.TOP_N  # the rollups keep the top N keys per day and dimension
PATH_ROWS = 20  # flows of the paths panel (and its export)
CACHE_SECONDS = 300


def _db() -> Any:
    """The eventlog database through this process's client."""
    s = eventlog_settings()
    return process_client(s.mongo_url)[s.mongo_db]


def _watermark_stamp(db: Any) -> tuple[str, datetime | None]:
    """Identifies the rollup state (changes on every run) and when rollups last ran."""
    marks = list(db[rollups.STATS_WATERMARKS].find(
        {"_id": {"$in": [rollups.WEBSITE_LOGS, rollups.EXIT_LINK_LOGS]}}, {"updated_at": 1}))
    times = [m["updated_at"] for m in marks if isinstance(m.get("updated_at"), datetime)]
    latest = max(times) if times else None
    return (latest.isoformat() if latest else "none"), latest


def _course_order(foss: Any, language: Any) -> list[str] | None:
    """Tutorial titles of a course in the site's order (EVENTLOG_PROGRESS_CATALOGUE), if configured."""
    from django_hook.progress_views import course  # the one place the catalogue is loaded

    if not isinstance(foss, str) or not isinstance(language, str):
        return None
    try:
        entries = course(foss, language)
    except Exception:  # noqa: BLE001 - no or a broken catalogue must not break the dashboard
        return None
    return [entry["title"] if isinstance(entry, dict) else str(entry) for entry in entries or []] or None


def funnels(tutorials: dict[str, Any]) -> list[dict[str, Any]]:
    """Per course: its tutorials in course order with learners who started and completed each."""
    by_course: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for t in tutorials["tutorials"]:
        by_course.setdefault((t.get("foss"), t.get("language")), []).append(t)
    result = []
    for course in tutorials["courses"]:
        foss, language = course.get("foss"), course.get("language")
        entries = {t.get("tutorial"): t for t in by_course.get((foss, language), [])}
        order = _course_order(foss, language)
        titles = order if order else sorted(entries, key=lambda k: -(entries[k].get("learners") or 0))
        steps = [{"tutorial": title, "learners": (entries.get(title) or {}).get("learners", 0),
                  "completions": (entries.get(title) or {}).get("completions", 0),
                  "rewatchers": (entries.get(title) or {}).get("rewatchers", 0)} for title in titles]
        result.append({"foss": foss, "language": language, "label": f"{foss} ({language})",
                       "learners": course.get("learners", 0), "steps": steps})
    result.sort(key=lambda f: -(f["learners"] or 0))
    return result


def kpis(src: dict[str, Any], rng: DateRange) -> dict[str, Any]:
    """The headline figures: visitors and visits over the whole range (read_summary), the rest summed by day."""
    daily, tutorials = src["daily"], src["tutorials"]
    totals = daily["totals"]
    summary = tutorials.get("summary") or {}
    visits = src.get("summary") or {}
    return {
        "page_views": totals["page_views"] or 0,
        "unique_visitors": visits.get("unique_visitors"),
        "uniques_exact": visits.get("uniques_exact"),
        "visits": visits.get("visits"),
        "bounce_rate": visits.get("bounce_rate"),
        "pages_per_visit": visits.get("pages_per_visit"),
        "visit_duration_avg": visits.get("visit_duration_avg"),
        "avg_daily_visitors": round(totals["visitor_days"] / rng.days, 1),
        "new_visitors": visits.get("new_visitors", sum(d.get("new_visitors") or 0 for d in daily["days"])),
        "logged_in_users": visits.get("logged_in_users"),
        "logged_in_views": totals["logged_in_views"],
        "tutorial_views": totals["tutorial_views"],
        "duration_avg": totals["duration_avg"],
        "bot_share": totals["bot_views"] / totals["all_views"] if totals["all_views"] else None,
        "exit_clicks": totals["exit_clicks"],
        "learners": summary.get("learners", 0),
        "completion_rate": summary.get("completion_rate"),
    }


def read_paths(db: Any, rng: DateRange, entry_path: str | None = None, event_name: str | None = None,
               limit: int = PATH_ROWS) -> dict[str, Any]:
    """The range's user paths (read_paths), optionally from one entry page or entry event."""
    return rollups.read_paths(db, rng.start, rng.end, site=rng.site, entry_path=entry_path or None,
                              event_name=event_name or None, limit=limit)


def read_sources(db: Any, rng: DateRange, limit: int = ALL_ROWS) -> dict[str, Any]:
    """The read API's answers for the range: what every table and figure is built from."""
    start, end, site = rng.start, rng.end, rng.site  # site None: every site together
    return {"daily": rollups.read_daily(db, start, end, limit=limit, site=site),
            "tutorials": rollups.read_tutorials(db),
            "summary": rollups.read_summary(db, start, end, site=site),
            "entry_pages": rollups.read_entry_pages(db, start, end, site=site, limit=limit),
            "exit_pages": rollups.read_exit_pages(db, start, end, site=site, limit=limit),
            "paths": read_paths(db, rng),
            "campaigns": rollups.read_campaigns(db, start, end, site=site, limit=limit),
            "sites": rollups.read_sites(db, start, end)}


def compute(db: Any, rng: DateRange, limit: int = ALL_ROWS) -> dict[str, Any]:
    """Every figure of the dashboard for a range, from the stats_* collections."""
    src = read_sources(db, rng, limit)
    daily, tutorials = src["daily"], src["tutorials"]
    tables = {name: table.build(src) for name, table in TABLES.items()}
    return {"start": daily["start"], "end": daily["end"], "days": rng.days, "kpis": kpis(src, rng),
            "totals": daily["totals"], "tables": tables, "funnels": funnels(tutorials),
            "paths": path_figures(src["paths"]), "sites": src["sites"], "site": rng.site,
            "tutorial_summary": tutorials.get("summary"), "tutorials_computed_at": tutorials.get("computed_at")}


def path_figures(paths: dict[str, Any]) -> dict[str, Any]:
    """What the paths panel shows besides its table: the funnel of steps and whether counts are exact."""
    return {"visits": paths.get("visits", 0), "steps": paths.get("steps") or [],
            "complete": paths.get("complete", True)}


def _cache_key(kind: str, rng: DateRange, stamp: str, *extra: str) -> str:
    s = eventlog_settings()
    # The filter values are visitor-made paths: hashed, so any text makes a valid cache key.
    tail = hashlib.sha1("\x1f".join(extra).encode()).hexdigest() if extra else ""
    site = hashlib.sha1(rng.site.encode()).hexdigest() if rng.site is not None else "all"
    return f"eventlog:{kind}:{s.mongo_url}:{s.mongo_db}:{rng.start}:{rng.end}:{site}:{stamp}:{tail}"


def filtered_paths(rng: DateRange, entry_path: str, event_name: str) -> dict[str, Any]:
    """The paths table and funnel for one entry page or entry event, cached like dashboard_data."""
    db = _db()
    stamp, _updated = _watermark_stamp(db)
    key = _cache_key("paths", rng, stamp, entry_path, event_name)
    found = cache.get(key)
    if found is None:
        paths = read_paths(db, rng, entry_path, event_name)
        found = {"rows": TABLES["paths"].build({"paths": paths}), "figures": path_figures(paths)}
        cache.set(key, found, CACHE_SECONDS)
    return found


def dashboard_data(rng: DateRange) -> dict[str, Any]:
    """compute() for the range, cached until the next rollup run (or CACHE_SECONDS)."""
    db = _db()
    stamp, updated_at = _watermark_stamp(db)
    key = _cache_key("dashboard", rng, stamp)
    figures = cache.get(key)
    if figures is None:
        figures = compute(db, rng)
        cache.set(key, figures, CACHE_SECONDS)
    return {**figures, "rollups_updated_at": updated_at}
