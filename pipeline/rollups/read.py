"""The read API behind the dashboard (docs/analytics-api.md): day documents only.

Every function reads ``stats_daily`` (all sites) or ``stats_daily_site`` (one
site) for the days asked, merges them in Python and never touches the raw logs,
so its cost follows the number of days, not the number of events. Distinct
counts over a range come from the merged sketches (each visitor once), not from
a sum of days.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import date, datetime
from typing import Any

from . import tables as tb
from .common import (
    DIMENSION_EXTRAS,
    DURATION_LABELS,
    FLOW_STEPS,
    STATS_DAILY,
    STATS_DAILY_SITE,
    STATS_STAMP,
    STATS_TUTORIALS,
    STATS_WATERMARKS,
    as_date,
    day_bounds,
    day_str,
    days_between,
)
from .merge import DAY_LIMITS, scalars
from .merged import Merged
from .sketch import Distinct

When = date | datetime | str
DAY_SCALARS = tuple(scalars({}, 0, 0, 0))
ADDITIVE = ("all_views", "page_views", "bot_views", "first_time_views", "returning_views", "logged_in_views",
            "anonymous_views", "tutorial_views", "exit_clicks", "duration_samples", "duration_total",
            "visits", "bounces", "visit_pages", "visit_duration_total")
_BASE = {"day": 1, "date": 1, "site": 1, "n": 1, "distinct": 1}


def _range(start: When, end: When) -> tuple[str, str]:
    return day_str(as_date(start)), day_str(as_date(end))


def _docs(db: Any, start: When, end: When, site: str | None, fields: dict[str, int]) -> list[dict[str, Any]]:
    """The day documents of the range (one site, or all sites), oldest first (whole: ``fields``
    says what the caller uses; nx-27017 answers a projected find slower than a plain one).

    A dashboard view calls several read functions for one range: the documents are fetched
    once and kept until the next rollup run or refresh (``STATS_STAMP`` changes), so the
    others cost one small lookup each. Callers must not modify them.
    """
    first, last = _range(start, end)
    query: dict[str, Any] = {"day": {"$gte": first, "$lte": last}}
    coll = STATS_DAILY
    if site is not None:
        coll, query = STATS_DAILY_SITE, {**query, "site": site}
    mark = db[STATS_WATERMARKS].find_one({"_id": STATS_STAMP}) or {}  # a new value after every write
    key = (id(db.client), db.name, coll, first, last, site, str(mark.get("run")))
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None and time.monotonic() - found[0] < CACHE_SECONDS:
            _CACHE.move_to_end(key)
            return found[1]
    docs = sorted(db[coll].find(query), key=lambda d: d["day"])
    with _CACHE_LOCK:
        _CACHE[key] = (time.monotonic(), docs)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return docs


CACHE_SIZE = 8  # ranges kept per process
CACHE_SECONDS = 300.0  # at most this old even if no rollup ran (a run changes the key at once)
_CACHE: OrderedDict[tuple[Any, ...], tuple[float, list[dict[str, Any]]]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _merge(docs: list[dict[str, Any]], only: tuple[str, ...]) -> Merged:
    """The documents added together; ``only``: the tables to merge (() for none)."""
    merged = Merged()
    for doc in docs:
        merged.add(doc, only)
    return merged


def _totals(merged: Merged) -> dict[str, Any]:
    counts = [merged.distinct(name) for name in ("visitors", "new_visitors", "users")]
    figures = scalars(merged.n, *(c.count() for c in counts))
    figures["uniques_exact"] = all(c.exact for c in counts)
    return figures


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


def read_summary(db: Any, start: When, end: When, site: str | None = None) -> dict[str, Any]:
    """Headline figures of the range (unique visitors and logged-in users counted once over the range)."""
    first, last = _range(start, end)
    totals = _totals(_merge(_docs(db, start, end, site, {"u": 1}), ()))
    keys = ("page_views", "unique_visitors", "logged_in_users", "new_visitors", "visits", "bounces",
            "bounce_rate", "pages_per_visit", "visit_duration_avg", "uniques_exact")
    return {"start": first, "end": last, "site": site, **{k: totals[k] for k in keys}}


def read_series(db: Any, start: When, end: When, site: str | None = None) -> list[dict[str, Any]]:
    """One entry per day of the range (zeros for days without events)."""
    by_day = {doc["day"]: doc for doc in _docs(db, start, end, site, dict.fromkeys(DAY_SCALARS, 1))}
    keys = ("page_views", "unique_visitors", "new_visitors", "logged_in_users", "bot_views", "visits", "bounces",
            "bounce_rate", "pages_per_visit", "visit_duration_avg", "tutorial_views", "exit_clicks", "duration_avg")
    zero = scalars({}, 0, 0, 0)
    return [{"day": day_str(d), **{k: (by_day.get(day_str(d)) or zero).get(k, zero[k]) for k in keys}}
            for d in days_between(as_date(start), as_date(end))]


def _top_rows(table: tb.Table, name: str, limit: int | None) -> list[dict[str, Any]]:
    extras = DIMENSION_EXTRAS.get(name, ())
    return [{"key": key[0], "count": int(counts[0]), **dict(zip(extras, key[1:], strict=False))}
            for key, counts in tb.top(table, limit)]


def read_daily(db: Any, start: When, end: When, limit: int = 20, site: str | None = None) -> dict[str, Any]:
    """What the dashboard shows for the days start..end (inclusive), from the day documents only.

    Returns::

        {"start", "end",
         "days": [{"day", "date", <figures>}, ...]  (every day; zeros when none),
         "totals": {<additive figures summed>, "duration_avg", "visitor_days", "user_days",
                    "unique_visitors", "logged_in_users", "new_visitors" (distinct over the range), ...},
         "top": {dimension: [{"key", "count", <extras>}, ...]}  (merged over the range),
         "duration": [{"bucket", "count"}, ...]  (in bucket order)}

    ``visitor_days`` / ``user_days`` are sums of the daily distinct counts (someone
    seen on two days counts twice); ``unique_visitors`` counts them once. The daily
    lists keep the top TOP_N keys, so merged counts of long-tail keys are lower bounds.
    """
    first, last = _range(start, end)
    dims = tuple(DIMENSION_EXTRAS)
    fields = {"u": 1, **dict.fromkeys(DAY_SCALARS, 1), **{tb.field(name): 1 for name in dims}}
    docs = _docs(db, start, end, site, fields)
    by_day = {doc["day"]: doc for doc in docs}
    zero = scalars({}, 0, 0, 0)
    days: list[dict[str, Any]] = []
    for day in days_between(as_date(start), as_date(end)):
        doc = by_day.get(day_str(day))
        figures = {k: (doc or zero).get(k, zero[k]) for k in DAY_SCALARS}
        days.append({"day": day_str(day), "date": doc["date"] if doc else day_bounds(day)[0], **figures,
                     "distinct": dict((doc or {}).get("distinct") or {})})
    merged = _merge(docs, dims)
    totals = {name: sum(d.get(name) or 0 for d in days) for name in ADDITIVE}
    totals["duration_total"] = round(totals["duration_total"], 3)
    totals["visit_duration_total"] = round(totals["visit_duration_total"], 3)
    totals["duration_avg"] = _ratio(totals["duration_total"], totals["duration_samples"], 3)
    totals["visitor_days"] = sum(d["unique_visitors"] or 0 for d in days)
    totals["user_days"] = sum(d["logged_in_users"] or 0 for d in days)
    ranged = _totals(merged)
    for key in ("unique_visitors", "logged_in_users", "new_visitors", "returning_visitors", "bounce_rate",
                "pages_per_visit", "visit_duration_avg", "uniques_exact"):
        totals[key] = ranged[key]
    top = {name: _top_rows(merged.tables.get(name, {}), name, limit) for name in dims if name != "duration"}
    durations = merged.tables.get("duration", {})
    duration = [{"bucket": label, "count": int(durations.get((label,), [0])[0])} for label in DURATION_LABELS]
    return {"start": first, "end": last, "days": days, "totals": totals, "top": top, "duration": duration}


def _visit_tables(db: Any, start: When, end: When, site: str | None, names: tuple[str, ...]) -> tuple[Merged, bool]:
    docs = _docs(db, start, end, site, {tb.field(name): 1 for name in names})
    complete = all((doc.get("distinct") or {}).get(name, 0) <= (DAY_LIMITS.get(name) or 0)
                   for doc in docs for name in names)
    return _merge(docs, names), complete


def _pages(db: Any, start: When, end: When, site: str | None, table: str, limit: int) -> list[dict[str, Any]]:
    merged, _ = _visit_tables(db, start, end, site, (table,))
    by_path: dict[Any, list[float]] = {}
    for key, counts in merged.tables.get(table, {}).items():
        tb.add({"p": by_path}, "p", (key[0],), counts[:2])
    total = merged.n.get("visits", 0)
    rows = [{"path": key[0], "visits": int(c[0]), "share": _ratio(c[0], total), "bounces": int(c[1]),
             "bounce_rate": _ratio(c[1], c[0])} for key, c in tb.top(by_path, limit)]
    return rows


def read_entry_pages(db: Any, start: When, end: When, site: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Pages visits started on: visits, share of all visits, bounces."""
    return _pages(db, start, end, site, "entry", limit)


def read_exit_pages(db: Any, start: When, end: When, site: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Pages visits ended on: visits, share of all visits, bounces."""
    return _pages(db, start, end, site, "exit", limit)


def read_paths(db: Any, start: When, end: When, site: str | None = None, entry_path: str | None = None,
               event_name: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The commonest flows (entry page + the next 3 page views) with the funnel's drop-off."""
    merged, complete = _visit_tables(db, start, end, site, ("entry", "flow"))

    def wanted(path: Any, event: Any) -> bool:
        return (entry_path is None or path == entry_path) and (event_name is None or event == event_name)

    reach = [0.0] * 5
    for (path, event), counts in merged.tables.get("entry", {}).items():
        if wanted(path, event):
            reach = [a + b for a, b in zip(reach, counts, strict=True)]
    visits, bounces, reached = int(reach[0]), int(reach[1]), [int(r) for r in (reach[0], *reach[2:])]
    steps = []
    for i, count in enumerate(reached):
        dropped = (bounces if i == 0 else count - reached[i + 1]) if i + 1 < len(reached) else None
        steps.append({"step": i + 1, "visits": count, "dropped": dropped,
                      "drop_rate": _ratio(dropped, count) if dropped is not None else None})
    flows = {key: counts for key, counts in merged.tables.get("flow", {}).items() if wanted(key[0], key[1])}
    rows = []
    for key, counts in tb.top(flows, limit):
        shown = [{"path": key[2 * i], "event": key[2 * i + 1]} for i in range(FLOW_STEPS)
                 if key[2 * i] is not None or key[2 * i + 1] is not None]
        rows.append({"steps": shown, "visits": int(counts[0]), "share": _ratio(counts[0], visits),
                     "ended": bool(key[-1])})
    return {"visits": visits, "steps": steps, "flows": rows, "complete": complete}


def read_campaigns(db: Any, start: When, end: When, site: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Visits and page views per (utm_source, utm_medium, utm_campaign) of the landing page."""
    merged, _ = _visit_tables(db, start, end, site, ("campaign",))
    return [{"source": k[0], "medium": k[1], "campaign": k[2], "visits": int(c[0]), "page_views": int(c[1]),
             "bounces": int(c[2]), "bounce_rate": _ratio(c[2], c[0]), "pages_per_visit": _ratio(c[1], c[0], 3)}
            for k, c in tb.top(merged.tables.get("campaign", {}), limit)]


def read_sites(db: Any, start: When, end: When) -> list[str]:
    """The sites seen in the range ("" for events stored without one)."""
    first, last = _range(start, end)
    docs = db[STATS_DAILY_SITE].find({"day": {"$gte": first, "$lte": last}}, {"site": 1})
    return sorted({doc.get("site") or "" for doc in docs})


def read_distinct(db: Any, start: When, end: When, site: str | None = None) -> dict[str, Distinct]:
    """The merged sketches of the range (visitors, new_visitors, users), for callers that merge further."""
    merged = _merge(_docs(db, start, end, site, {"u": 1}), ())
    return {name: merged.distinct(name) for name in ("visitors", "new_visitors", "users")}


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_id", "computed_at", "kind")}


def read_tutorials(db: Any) -> dict[str, Any]:
    """The tutorial progress snapshot, from stats_tutorials only.

    ``{"summary": {...} | None, "tutorials": [...], "courses": [...], "computed_at"}``;
    tutorials sorted by learners (desc), courses by foss and language.
    """
    summary: dict[str, Any] | None = None
    tutorials: list[dict[str, Any]] = []
    courses: list[dict[str, Any]] = []
    computed_at = None
    for doc in db[STATS_TUTORIALS].find({}):
        kind = doc.get("kind")
        computed_at = doc.get("computed_at", computed_at)
        if kind == "summary":
            summary = _clean(doc)
        elif kind == "tutorial":
            tutorials.append(_clean(doc))
        elif kind == "course":
            courses.append(_clean(doc))
    tutorials.sort(key=lambda t: (-(t.get("learners") or 0), str(t.get("foss")), str(t.get("language")),
                                  str(t.get("tutorial"))))
    courses.sort(key=lambda c: (str(c.get("foss")), str(c.get("language"))))
    return {"summary": summary, "tutorials": tutorials, "courses": courses, "computed_at": computed_at}
