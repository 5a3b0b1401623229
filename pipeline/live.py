"""The dashboard's live view: who is on the site right now.

Plain Python + pymongo. One bounded query on the newest page views
(``website_logs``, bounded by ``datetime`` and the store's ``updated_ts``, newest first, at most ``max_events``
documents of the last ``window`` minutes), counted in Python:

- visitors (distinct ``visitor_id``) and page views in the last 5 and 30 minutes,
  people only (``is_bot`` true is left out);
- the pages they are on: each visitor of the short window counted once, at the
  page of their newest page view;
- page views per minute over the long window (oldest first), for a sparkline.

Rollups are minutes behind by design (``EVENTLOG_ROLLUP_INTERVAL``); this reads
raw logs, but only the newest few minutes of them, so its cost follows the
site's current traffic, not the size of the store. When a busy site has more
than ``max_events`` page views in the long window, the figures cover the newest
``max_events`` and ``truncated`` says so (the counts are then lower bounds).
The filter compares dates in ``find`` (not in an aggregation), which nx-27017
honours as MongoDB does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

WEBSITE_LOGS = "website_logs"
SHORT_MINUTES = 5
LONG_MINUTES = 30
# About 5.5 page views a second for 30 minutes. The query's cost follows the documents it returns:
# on nx-27017 about 0.1 ms each (10,000: 1 s), on MongoDB a small fraction of that.
MAX_EVENTS = 10_000
TOP_PAGES = 10
UPDATED_TS_SLACK = timedelta(minutes=5)
FIELDS = {"_id": 0, "datetime": 1, "visitor_id": 1, "path_info": 1, "page_title": 1, "is_bot": 1}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def recent_page_views(db: Any, now: datetime, minutes: int = LONG_MINUTES,
                      max_events: int = MAX_EVENTS) -> list[dict[str, Any]]:
    """The newest page views of the last ``minutes`` (bots included), newest first, at most ``max_events``."""
    since = now - timedelta(minutes=minutes)
    # The store stamps ``updated_ts`` (epoch seconds, indexed) when it writes a page view, never
    # before the page view happened; bounding it too lets nx-27017 use that numeric index (it scans
    # the whole collection for a date range). The slack covers web hosts' clocks running ahead.
    stored_since = (since - UPDATED_TS_SLACK).timestamp()
    query = {"updated_ts": {"$gte": stored_since}, "datetime": {"$gte": since, "$lte": now}}
    cursor = db[WEBSITE_LOGS].find(query, FIELDS).sort("datetime", -1).limit(max_events)
    return list(cursor)


def _visitor(doc: Mapping[str, Any]) -> str | None:
    return doc.get("visitor_id") or None


def summarise(docs: Iterable[Mapping[str, Any]], now: datetime, short: int = SHORT_MINUTES,
              long: int = LONG_MINUTES, top: int = TOP_PAGES) -> dict[str, Any]:
    """The live figures of page views given newest first (the query's order)."""
    short_since, long_since = now - timedelta(minutes=short), now - timedelta(minutes=long)
    per_minute = [0] * long
    visitors: dict[str, set[str]] = {"short": set(), "long": set()}
    views = {"short": 0, "long": 0}
    on_page: dict[str, tuple[str, str]] = {}  # visitor -> (path, title) of their newest page view
    for doc in docs:
        if doc.get("is_bot") is True:
            continue
        at = _utc(doc["datetime"])
        if at < long_since:
            continue
        who = _visitor(doc)
        views["long"] += 1
        if who:
            visitors["long"].add(who)
        per_minute[min(long - 1, int((at - long_since).total_seconds() // 60))] += 1
        if at >= short_since:
            views["short"] += 1
            if who:
                visitors["short"].add(who)
                on_page.setdefault(who, (doc.get("path_info") or "", doc.get("page_title") or ""))
    pages = Counter(path for path, _title in on_page.values())
    titles = {path: title for path, title in on_page.values() if title}
    return {
        "now": now,
        "windows": [{"minutes": short, "visitors": len(visitors["short"]), "page_views": views["short"]},
                    {"minutes": long, "visitors": len(visitors["long"]), "page_views": views["long"]}],
        "pages": [{"path": path, "title": titles.get(path, ""), "visitors": n}
                  for path, n in sorted(pages.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
        "per_minute": per_minute,
    }


def live_figures(db: Any, now: datetime | None = None, max_events: int = MAX_EVENTS) -> dict[str, Any]:
    """Visitors and page views of the last 5 and 30 minutes and the pages visitors are on.

    Returns ``{"now", "windows": [{"minutes", "visitors", "page_views"}, ...] (5, then 30),
    "pages": [{"path", "title", "visitors"}, ...], "per_minute": [page views, oldest first],
    "truncated": bool}``.
    """
    now = _utc(now or datetime.now(UTC))
    docs = recent_page_views(db, now, LONG_MINUTES, max_events)
    return {**summarise(docs, now), "truncated": len(docs) >= max_events}
