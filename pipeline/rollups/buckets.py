"""Bucket figures: what one time bucket (``BUCKET_SECONDS``) of one site holds.

Two kinds, recomputed independently and whole from their sources:

- event buckets (``stats_buckets``): the page views and exit links whose
  ``datetime`` falls in the bucket: counts, breakdowns, distinct-visitor sketches;
- visit buckets (``stats_visit_buckets``): the visits (``stats_visits``) that
  *started* in the bucket: visits, bounces, pages, duration, entry and exit pages,
  flows, campaigns.

A bucket's document is a pure function of its sources, so recomputing it twice,
or after a redelivered or late event, gives the same document.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from . import tables as tb
from .common import (
    ANONYMOUS,
    DIMENSIONS,
    FLOW_STEPS,
    HOUR,
    WATCH_EVENT,
    as_utc,
    day_of_epoch,
    dotted,
    duration_label,
    epoch,
    floor_to,
    is_number,
    key_part,
    ref,
    referrer_host,
    site_of,
)
from .packing import pack
from .sketch import Distinct, hash64

# Fields of website_logs an event row keeps (what the figures need).
EVENT_FIELDS = ("datetime", "is_bot", "event_name", "path_info", "visitor_id", "visited_by", "first_time_visit",
                "visit_duration", "country", "country_code", "region", "city", "browser_family", "os_family",
                "device_family", "device_type", "referrer", "view_kwargs", "site", "source", "offline_learner", "dnt")
EXIT_FIELDS = ("datetime", "exit_link", "site")
SCALARS = ("all_views", "page_views", "bot_views", "first_time_views", "logged_in_views", "tutorial_views",
           "exit_clicks", "duration_samples", "duration_total")
VISIT_SCALARS = ("visits", "bounces", "visit_pages", "visit_duration_total")
SKETCHES = ("visitors", "new_visitors", "users")
_PAGE_DIMS = [d for d in DIMENSIONS if d.collection != "exit_link_logs" and not d.bots]
# An event row: [event id, is_bot, first_time_visit, visitor, user, engaged seconds, <one value per page
# dimension in _PAGE_DIMS order, each a list of its key parts>]. Rows keep a bucket recomputable from
# its own document: a run reads the bucket, not the raw logs (nx-27017 scans the whole collection
# for a date range, ~6 us per stored event per query).
_ROW_DIMS = 6
_ROW_PARTS = [(d.name, d.parts) for d in _PAGE_DIMS]
# How each row value is read (this runs once per event, a million times in a first run):
# "referrer" folds to its host; a plain field is a dict lookup; "a.b" walks the document.
# (dimension, its index in a row, watch_only, present_only, key parts), for _count_row.
_COUNT_PLAN = [(d.name, _ROW_DIMS + i, d.watch_only, d.present_only, len(d.parts)) for i, d in enumerate(_PAGE_DIMS)]
_EVENT_AT = _ROW_DIMS + [d.name for d in _PAGE_DIMS].index("event")
_ROW_PLAN = [(name == "referrer", tuple((p, "." in p) for p in parts)) for name, parts in _ROW_PARTS]


class _Acc:
    """What one bucket of one site has counted so far."""

    def __init__(self) -> None:
        self.n: dict[str, float] = {}
        self.tables: tb.Tables = {}
        self.ids: dict[str, set[str]] = {name: set() for name in SKETCHES}

    def inc(self, name: str, by: float = 1) -> None:
        self.n[name] = self.n.get(name, 0) + by


def bucket_of(doc: dict[str, Any], size: int) -> tuple[int, str] | None:
    """(bucket start, site) of a raw page view or exit link."""
    when = doc.get("datetime")
    return (floor_to(epoch(when), size), site_of(doc)) if isinstance(when, datetime) else None


def event_row(doc: dict[str, Any]) -> list[Any]:
    """The compact row of a raw page view."""
    is_bot = doc.get("is_bot") is True
    seconds = doc.get("visit_duration")
    user = doc.get("visited_by")
    visitor = doc.get("visitor_id")
    row: list[Any] = [str(doc["_id"]), is_bot, doc.get("first_time_visit") is True,
                      None if visitor is None else _pseudonym(str(visitor)),
                      None if user in (ANONYMOUS, None) else _pseudonym(str(user)),
                      float(seconds) if is_number(seconds) and seconds >= 0 else None]
    if is_bot:
        return [*row, [key_part(doc.get("browser_family"))]]
    get = doc.get
    for is_referrer, parts in _ROW_PLAN:
        if is_referrer:
            row.append([referrer_host(get("referrer"))])
        else:
            row.append([_text(dotted(doc, p) if nested else get(p)) for p, nested in parts])
    return row


def _text(value: Any) -> Any:
    # key_part, with its common case (a non-empty string) first
    return value if value.__class__ is str and value else key_part(value)


def _pseudonym(value: str) -> str:
    # Rows keep only what distinct counts need: a 64-bit hash, not the visitor id or user name.
    return format(hash64(value), "016x")


def exit_row(doc: dict[str, Any]) -> list[Any]:
    return [str(doc["_id"]), key_part(doc.get("exit_link"))]


def _count_row(acc: _Acc, row: list[Any]) -> None:
    _id, is_bot, first_time, visitor, user, seconds = row[:_ROW_DIMS]
    acc.inc("all_views")
    if is_bot:
        acc.inc("bot_views")
        tb.add(acc.tables, "bot", tuple(row[_ROW_DIMS]))
        return
    acc.inc("page_views")
    if visitor is not None:
        acc.ids["visitors"].add(visitor)
        if first_time:
            acc.ids["new_visitors"].add(visitor)
    if first_time:
        acc.inc("first_time_views")
    if user is not None:
        acc.inc("logged_in_views")
        acc.ids["users"].add(user)
    width = len(row)  # rows stored before the last dimensions existed are shorter
    watch = width > _EVENT_AT and row[_EVENT_AT] == [WATCH_EVENT]
    if watch:
        acc.inc("tutorial_views")
    for name, at, watch_only, present_only, parts in _COUNT_PLAN:
        if watch_only and not watch:
            continue
        value = row[at] if at < width else None
        if present_only and not any(value or ()):
            continue
        tb.add(acc.tables, name, tuple(value) if value else (None,) * parts)
    if seconds is not None:
        acc.inc("duration_samples")
        acc.inc("duration_total", seconds)
        tb.add(acc.tables, "duration", (duration_label(seconds),))


def _doc(kind: str, bucket: int, site: str, n: dict[str, float], tables: tb.Tables,
         sketches: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": bucket_id(kind, bucket, site), "bucket": bucket,
                           "hour": floor_to(bucket, HOUR), "day": day_of_epoch(bucket), "site": site,
                           "n": n, **tb.encode(tables), "computed_at": now}
    if sketches is not None:
        doc["u"] = sketches
    return doc


def bucket_id(kind: str, bucket: int, site: str) -> str:
    # Starts with the kind, never with a day (nx-27017 matches no filter string that starts with a date).
    return f"{kind}|{ref((site,))}|{bucket}"


def event_bucket_doc(bucket: int, site: str, rows: list[list[Any]], exits: list[list[Any]],
                     now: datetime) -> dict[str, Any]:
    """An event bucket's document: its rows and the figures counted from them (a pure function of the rows)."""
    acc = _Acc()
    rows = sorted(rows, key=lambda r: r[0])  # by event id: the same document in any arrival order
    exits = sorted(exits, key=lambda r: r[0])
    for row in rows:
        _count_row(acc, row)
    for row in exits:
        acc.inc("exit_clicks")
        tb.add(acc.tables, "exit_link", (row[1],))
    sketches = {name: Distinct.of(ids).to_doc() for name, ids in acc.ids.items()}
    doc = _doc("e", bucket, site, acc.n, acc.tables, sketches, now)
    doc["rows"], doc["xrows"] = rows, exits
    return doc


def visit_figures(visit: dict[str, Any]) -> tuple[tb.Tables, dict[str, float]]:
    """One visit's contribution to its start bucket."""
    pages = int(visit.get("n") or 0)
    bounce = int(pages == 1)
    steps = list(visit.get("steps") or [])[:FLOW_STEPS]
    tables: tb.Tables = {}
    if steps:
        entry = (steps[0][0], steps[0][1])
        tb.add(tables, "entry", entry, (1, bounce, int(pages >= 2), int(pages >= 3), int(pages >= 4)))
        flat: list[Any] = []
        for step in steps + [[None, None]] * (FLOW_STEPS - len(steps)):
            flat.extend((step[0], step[1]))
        tb.add(tables, "flow", (*flat, pages <= FLOW_STEPS))
    tb.add(tables, "exit", (visit.get("exit"),), (1, bounce))
    utm = visit.get("utm")
    if utm and any(utm):
        tb.add(tables, "campaign", tuple(utm), (1, pages, bounce))
    n = {"visits": 1, "bounces": bounce, "visit_pages": pages,
         "visit_duration_total": float(visit.get("duration") or 0.0)}
    return tables, n


VisitRow = list[Any]  # [visit id, pages, duration, steps, exit page, utm]: what a visit adds to its bucket


def visit_row(visit: dict[str, Any]) -> VisitRow:
    """The part of a visit (a stats_visits document) its start bucket is counted from."""
    return [str(visit["_id"]), visit.get("n"), visit.get("duration"), visit.get("steps"), visit.get("exit"),
            visit.get("utm")]


def visit_bucket_doc(bucket: int, site: str, rows: Iterable[VisitRow], now: datetime) -> dict[str, Any]:
    """A visit bucket's document: the figures of its visits' rows, and the rows (``vrows``, packed), so
    that a change to a few of its visits is recounted without reading the others (merge.update_visit_buckets)."""
    acc = _Acc()
    ordered = sorted(rows, key=lambda r: r[0])  # by visit id: the same document in any order
    for row in ordered:
        tables, n = visit_figures({"n": row[1], "duration": row[2], "steps": row[3], "exit": row[4], "utm": row[5]})
        for name, table in tables.items():
            for key, counts in table.items():
                tb.add(acc.tables, name, key, counts)
        for name, value in n.items():
            acc.inc(name, value)
    return {**_doc("v", bucket, site, acc.n, acc.tables, None, now), "vrows": pack(ordered)}


def visit_buckets(visits: Iterable[dict[str, Any]], size: int, now: datetime) -> dict[tuple[int, str], dict[str, Any]]:
    """The visit-bucket documents of the given visits (stats_visits documents), by (bucket, site)."""
    rows: dict[tuple[int, str], list[VisitRow]] = {}
    for visit in visits:
        start = visit.get("start")
        if isinstance(start, datetime):
            key = (floor_to(as_utc(start).timestamp(), size), visit.get("site") or "")
            rows.setdefault(key, []).append(visit_row(visit))
    return {key: visit_bucket_doc(key[0], key[1], found, now) for key, found in rows.items()}
