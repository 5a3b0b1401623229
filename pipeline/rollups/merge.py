"""Recomputing buckets, and merging them into hours and days.

Buckets are recomputed from their sources (raw events, stats_visits); an hour
(``stats_hourly``, per site) is the merge of its event and visit buckets; a day
(``stats_daily_site`` per site, ``stats_daily`` for all sites) is the merge of its
hours. Each level is written whole (``ReplaceOne`` with its ``_id``, see the
package notes on nx-27017) and documents of the same range that no longer have a
source are deleted, so every level is a pure function of the level below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import pymongo
from pymongo import ReplaceOne

from . import tables as tb
from .buckets import (
    SCALARS,
    SKETCHES,
    VISIT_SCALARS,
    bucket_id,
    bucket_of,
    event_bucket_doc,
    event_row,
    exit_row,
    visit_bucket_doc,
    visit_buckets,
)
from .common import (
    DAY,
    DIMENSIONS,
    FLOW_TOP,
    HOUR,
    STATS_BUCKET_ROWS,
    STATS_BUCKETS,
    STATS_DAILY,
    STATS_DAILY_SITE,
    STATS_HOURLY,
    STATS_VISIT_BUCKETS,
    TOP_N,
    as_date,
    day_bounds,
    find_by_ids,
    floor_to,
    from_epoch,
    ref,
)
from .merged import MergeCache, Merged, merged
from .packing import pack, unpack
from .sketch import Distinct
from .visits import visits_starting

# Keys a day keeps per table (the funnel of read_paths needs the entry table as long as the flows).
DAY_LIMITS: dict[str, int | None] = {**{d.name: TOP_N for d in DIMENSIONS}, "duration": None,
                                     "entry": FLOW_TOP, "exit": TOP_N, "campaign": TOP_N, "flow": FLOW_TOP}
# Hours keep more than days (a key a day keeps is then counted in full unless some hour had more
# distinct keys than this), and not everything: a busy site's hours hold thousands of distinct
# flows and paths, and every run merges a day from its hours. A cut shows in ``distinct``.
HOUR_LIMITS: dict[str, int | None] = {name: None if limit is None else 5 * limit for name, limit in DAY_LIMITS.items()}
HOUR_LIMITS["flow"] = HOUR_LIMITS["entry"] = 2 * FLOW_TOP
# Sums of the hours a run did not rewrite (merged.py): the days merged run after run are the newest
# one or two (per site), and a busy day's sum holds the union of its hours' rows (by HOUR_LIMITS, up
# to 48,000 flows and as many entry pages; measured: 13.8 MB for 17 hours of a day of 300,000 page
# views). (Not for hours: consecutive runs rewrite different buckets of the current hour, so its
# kept sum would hardly ever match.)
DAY_SUMS = MergeCache(entries=4)


def ensure_indexes(db: Any) -> None:
    db[STATS_BUCKET_ROWS].create_index([("bucket", pymongo.ASCENDING)])
    for name in (STATS_BUCKETS, STATS_VISIT_BUCKETS):
        db[name].create_index([("bucket", pymongo.ASCENDING)])
        db[name].create_index([("hour", pymongo.ASCENDING)])
    db[STATS_HOURLY].create_index([("day", pymongo.ASCENDING)])
    db[STATS_HOURLY].create_index([("hour", pymongo.ASCENDING)])
    db[STATS_DAILY].create_index([("day", pymongo.ASCENDING)])
    db[STATS_DAILY_SITE].create_index([("day", pymongo.ASCENDING)])


def runs(buckets: Iterable[int], size: int, longest: int, join: int = 0) -> Iterator[tuple[int, int]]:
    """Runs [first, last] covering the given buckets, each at most ``longest`` seconds long.

    Buckets at most ``join`` seconds apart share a run: each run costs a query or two, and
    recomputing the few buckets between two touched ones costs less than those (a first run
    over a quiet month touches buckets with gaps between them: 1 query per day, not thousands).
    """
    first = last = None
    for b in sorted(set(buckets)):
        if first is not None and b - last <= size + join and b + size - first <= longest:
            last = b
            continue
        if first is not None:
            yield first, last
        first = last = b
    if first is not None:
        yield first, last


def _replace(coll: Any, docs: list[dict[str, Any]], stale: dict[str, Any]) -> None:
    """Write ``docs`` whole and delete the other documents matching ``stale``."""
    keep = {d["_id"] for d in docs}
    # The stale ones by id, not by a "$nin" of every kept id: nx-27017 tests each document of the
    # range against that list (4.3 s for the 19,000 visit buckets of a first run over 100,000 events).
    gone = [d["_id"] for d in coll.find(stale, {"_id": 1}) if d["_id"] not in keep]
    if docs:
        coll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
    if gone:
        coll.delete_many({"_id": {"$in": gone}})


def fold_events(db: Any, page_views: Iterable[dict[str, Any]], exit_links: Iterable[dict[str, Any]], size: int,
                now: datetime, fresh: bool = False, before_write: Callable[[set[int]], None] | None = None) -> set[int]:
    """Put raw page views and exit links (new or changed) into their event buckets; returns the buckets.

    Each touched bucket document is read, its rows for these events replaced (by event
    id: a redelivered or re-selected event replaces itself), its figures recounted from
    its rows, and written whole; a bucket whose rows did not change is left alone (and not
    returned, so its hour and day are not re-merged). ``fresh``: the given events are all
    the buckets hold (a refresh from the raw logs), existing rows are dropped. ``before_write``
    is told the buckets that will change before anything is written (:mod:`.journal`).
    """
    rows: dict[tuple[int, str], dict[str, list[Any]]] = {}
    exits: dict[tuple[int, str], dict[str, list[Any]]] = {}
    for doc in page_views:
        key = bucket_of(doc, size)
        if key is not None:
            rows.setdefault(key, {})[str(doc["_id"])] = event_row(doc)
    for doc in exit_links:
        key = bucket_of(doc, size)
        if key is not None:
            exits.setdefault(key, {})[str(doc["_id"])] = exit_row(doc)
    keys = set(rows) | set(exits)
    stored: dict[str, dict[str, Any]] = {}
    if not fresh and keys:
        ids = [bucket_id("e", b, site) for b, site in keys]
        stored = {d["_id"]: d for d in find_by_ids(db[STATS_BUCKET_ROWS], ids)}
    docs = []
    changed: set[int] = set()
    for bucket, site in keys:
        old = stored.get(bucket_id("e", bucket, site))
        old_rows = {row[0]: row for row in unpack((old or {}).get("rows")) or []}
        old_exits = {row[0]: row for row in unpack((old or {}).get("xrows")) or []}
        merged_rows = {**old_rows, **rows.get((bucket, site), {})}
        merged_exits = {**old_exits, **exits.get((bucket, site), {})}
        if old is not None and merged_rows == old_rows and merged_exits == old_exits:
            continue  # re-selected, redelivered or unchanged events: nothing to recount or re-merge
        changed.add(bucket)
        docs.append(event_bucket_doc(bucket, site, list(merged_rows.values()), list(merged_exits.values()), now))
    if changed and before_write is not None:
        before_write(changed)
    for chunk_start in range(0, len(docs), 200):
        chunk = docs[chunk_start:chunk_start + 200]
        # The rows in a collection of their own: the hour merges read the figures only
        # (nx-27017 reads a whole document even for a projection). Figures first: a run killed
        # between the two leaves the old rows, so the next run finds its events new and recounts.
        rows_docs = [{"_id": d["_id"], "bucket": d["bucket"], "rows": pack(d.pop("rows")),
                      "xrows": pack(d.pop("xrows"))} for d in chunk]
        db[STATS_BUCKETS].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in chunk], ordered=False)
        db[STATS_BUCKET_ROWS].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in rows_docs],
                                         ordered=False)
    return changed


def clear_event_buckets(db: Any, first: int, last: int, keep: Iterable[int]) -> None:
    """Delete the event buckets first..last that are not in ``keep`` (a refresh found no events there)."""
    for name in (STATS_BUCKETS, STATS_BUCKET_ROWS):
        db[name].delete_many({"bucket": {"$gte": first, "$lte": last, "$nin": sorted(set(keep))}})


def write_visit_range(db: Any, first: int, last: int, size: int, now: datetime) -> None:
    """Recompute the visit buckets first..last from stats_visits."""
    docs = list(visit_buckets(visits_starting(db, first, last + size), size, now).values())
    _replace(db[STATS_VISIT_BUCKETS], docs, {"bucket": {"$gte": first, "$lte": last}})


def update_visit_buckets(db: Any, changes: dict[tuple[int, str], dict[str, Any]], now: datetime) -> set[int]:
    """Apply changed visit rows ({(bucket, site): {visit id: row | None}}) to their visit buckets.

    A bucket is recounted from its stored rows with these replaced: the cost follows the changed
    visits and their buckets' rows, not every visit that started there (a busy bucket holds
    hundreds; reading them all from stats_visits was most of a run after a minute's events).
    Returns the buckets that must be recomputed from stats_visits instead: those written before
    visit buckets kept their rows.
    """
    if not changes:
        return set()
    ids = {bucket_id("v", bucket, site): (bucket, site) for bucket, site in changes}
    stored = {d["_id"]: d for d in find_by_ids(db[STATS_VISIT_BUCKETS], list(ids))}
    docs, gone, legacy = [], [], set()
    for doc_id, (bucket, site) in ids.items():
        old = stored.get(doc_id)
        if old is not None and old.get("vrows") is None:
            legacy.add(bucket)
            continue
        rows = {row[0]: row for row in unpack((old or {}).get("vrows")) or []}
        for visit_id, row in changes[(bucket, site)].items():
            if row is None:
                rows.pop(visit_id, None)
            else:
                rows[visit_id] = row
        if rows:
            docs.append(visit_bucket_doc(bucket, site, rows.values(), now))
        elif old is not None:
            gone.append(doc_id)
    if docs:
        db[STATS_VISIT_BUCKETS].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
    if gone:
        db[STATS_VISIT_BUCKETS].delete_many({"_id": {"$in": gone}})
    return legacy


def _merged_doc(merged: Merged, limits: dict[str, int | None] | None) -> dict[str, Any]:
    tables, distinct = tb.cut(merged.tables, limits or {})
    # At least what one document below had: a cut hour makes its day "not complete" too.
    distinct = {name: max(n, merged.cut_from.get(name, 0)) for name, n in distinct.items()}
    sketches = {name: merged.distinct(name).to_doc() for name in SKETCHES}
    n = {name: merged.n.get(name, 0) for name in (*SCALARS, *VISIT_SCALARS)}
    n["duration_total"] = round(n["duration_total"], 3)
    n["visit_duration_total"] = round(n["visit_duration_total"], 3)
    return {"n": n, **tb.encode(tables), "u": sketches, "distinct": distinct}


def write_hours(db: Any, hours: Iterable[int], now: datetime, run: str = "") -> set[str]:
    """Re-merge the given hours (per site) from their buckets; returns the days they belong to.

    Hours are read and written a day at a time (one query per collection, one bulk write,
    one delete): each round trip to nx-27017 costs milliseconds. ``run`` marks the hours it writes
    (:func:`write_days` keeps the sum of the others).
    """
    by_day: dict[int, list[int]] = {}
    for hour in set(hours):
        by_day.setdefault(floor_to(hour, DAY), []).append(hour)
    for day_start, wanted in sorted(by_day.items()):
        first, last = min(wanted), max(wanted)
        sources: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for name in (STATS_BUCKETS, STATS_VISIT_BUCKETS):
            for doc in db[name].find({"hour": {"$gte": first, "$lte": last}}):
                if doc["hour"] in wanted:
                    sources.setdefault((doc["hour"], doc.get("site") or ""), []).append(doc)
        day = from_epoch(day_start).date().isoformat()
        docs = [{"_id": f"h|{ref((site,))}|{hour}", "hour": hour, "day": day, "site": site,
                 **_merged_doc(merged(found), HOUR_LIMITS),
                 "computed_at": now, "run": run}
                for (hour, site), found in sources.items()]
        _replace(db[STATS_HOURLY], docs, {"hour": {"$in": sorted(wanted)}})
    return {from_epoch(d).date().isoformat() for d in by_day}


def scalars(n: dict[str, float], visitors: int, new: int, users: int) -> dict[str, Any]:
    """The flat figures of a day or range (the names stats_daily always had, and the visit figures)."""
    page_views = int(n.get("page_views", 0))
    samples, total = n.get("duration_samples", 0), n.get("duration_total", 0.0)
    visits, bounces = int(n.get("visits", 0)), int(n.get("bounces", 0))
    pages, visit_total = n.get("visit_pages", 0), n.get("visit_duration_total", 0.0)
    return {
        "all_views": int(n.get("all_views", 0)), "page_views": page_views, "bot_views": int(n.get("bot_views", 0)),
        "unique_visitors": visitors, "new_visitors": new, "returning_visitors": max(0, visitors - new),
        "first_time_views": int(n.get("first_time_views", 0)),
        "returning_views": page_views - int(n.get("first_time_views", 0)),
        "logged_in_users": users, "logged_in_views": int(n.get("logged_in_views", 0)),
        "anonymous_views": page_views - int(n.get("logged_in_views", 0)),
        "tutorial_views": int(n.get("tutorial_views", 0)), "exit_clicks": int(n.get("exit_clicks", 0)),
        "duration_samples": int(samples), "duration_total": round(total, 3),
        "duration_avg": round(total / samples, 3) if samples else None,
        "visits": visits, "bounces": bounces, "visit_pages": int(pages),
        "visit_duration_total": round(visit_total, 3),
        "bounce_rate": round(bounces / visits, 4) if visits else None,
        "pages_per_visit": round(pages / visits, 3) if visits else None,
        "visit_duration_avg": round(visit_total / visits, 3) if visits else None,
    }


def _day_doc(doc_id: str, day: str, site: str | None, merged: Merged, now: datetime) -> dict[str, Any]:
    body = _merged_doc(merged, DAY_LIMITS)
    counts = [Distinct.from_doc(body["u"][name]).count() for name in SKETCHES]
    return {"_id": doc_id, "day": day, "date": day_bounds(as_date(day))[0], "site": site, **body,
            **scalars(body["n"], *counts), "computed_at": now}


def write_days(db: Any, days: Iterable[str], now: datetime, run: str = "") -> None:
    """Re-merge the given days from their hours: per site, and all sites together. ``run``: the hours
    this run wrote; the sum of the others is kept from an earlier run of this process (:mod:`.merged`)."""
    for day in sorted(set(days)):
        hours: dict[str, list[dict[str, Any]]] = {}
        for doc in db[STATS_HOURLY].find({"day": day}):
            hours.setdefault(doc.get("site") or "", []).append(doc)
        site_docs = [_day_doc(f"s|{ref((site,))}|{day}", day, site, DAY_SUMS.merged((db.name, day, site), docs, run),
                              now) for site, docs in hours.items()]
        _replace(db[STATS_DAILY_SITE], site_docs, {"day": day})
        if hours:
            # One site (most installs): all sites together are that site's figures, merged already.
            whole = {**site_docs[0], "_id": day, "site": None} if len(site_docs) == 1 else _day_doc(
                day, day, None, merged(doc for docs in hours.values() for doc in docs), now)
            db[STATS_DAILY].replace_one({"_id": day}, whole, upsert=True)
        else:
            db[STATS_DAILY].delete_one({"_id": day})


def hours_of(buckets: Iterable[int]) -> set[int]:
    return {floor_to(b, HOUR) for b in buckets}


def days_of(buckets: Iterable[int]) -> set[str]:
    return {from_epoch(floor_to(b, DAY)).date().isoformat() for b in buckets}
