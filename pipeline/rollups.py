"""Rollups: the aggregation pipelines behind the analytics dashboard.

Plain Python + pymongo (no Django, no Celery). Beat calls :func:`run_rollups`;
the dashboard calls :func:`read_daily` and :func:`read_tutorials`, which read
only the ``stats_*`` collections, never the raw logs.

Design: incremental *selection*, complete *recomputation*
--------------------------------------------------------
A run does not add new events onto running totals (that is neither idempotent
nor safe against redelivery, overlapping runs or late events). Instead:

1. Select the events stored since the watermark: ``stored_at > watermark - SAFETY_OVERLAP``
   (``stored_at`` index). The overlap catches batches whose ``stored_at`` was stamped
   by a worker just before the last run but committed just after it.
2. Collect the set of *affected days*: the UTC day of each selected event's
   ``datetime``. An offline replay (``datetime`` days old, ``stored_at`` new) thus
   marks the old day, and is counted in that day.
3. Recompute every affected day completely from ``website_logs`` (and
   ``exit_link_logs``) for that day, selected by a ``datetime`` range (``datetime``
   index), and replace the day's rollup documents: upserts by deterministic ``_id``
   (``"{dimension}|{day}|{key}"``), then deletion of the day's keys that no longer
   occur.
4. Only then advance the watermark to the largest ``stored_at`` seen (the server's
   data, not this host's clock).

Because a day's figures are a pure function of that day's raw events, running a
rollup twice, re-selecting events in the overlap, or crashing before the watermark
moved all give the same documents. A lease in ``stats_watermarks`` (``_id`` "lock",
epoch-seconds expiry, renewed per day) keeps two beat instances started by mistake
from writing the same day at once; the loser returns ``{"skipped": "locked"}``.

The first run (no watermark) recomputes every day between the oldest and the
newest event. Documents without ``stored_at`` are only seen by that first run or
when another event of their day arrives. ``exit_link_logs`` has no ``stored_at``
in the contract, so its days come from (a) the affected page-view days (an exit
click is sent with the page view it leaves from), (b) exit links whose
``datetime`` is newer than its own watermark, and (c) ``stored_at``, when those
documents carry it.

Tutorial progress (``tutorial_progress_logs``, one document per user and
tutorial, small) is a snapshot: recomputed fully on each run into ``stats_tutorials``.

Days are UTC days, written ``YYYY-MM-DD``.

Collections and document shapes
-------------------------------
``stats_daily``: one per day, ``_id`` = day::

    {_id, day, date, all_views, page_views, bot_views, unique_visitors,
     new_visitors, returning_visitors, first_time_views, returning_views,
     logged_in_users, logged_in_views, anonymous_views, tutorial_views,
     exit_clicks, duration_samples, duration_total, duration_avg,
     distinct: {dimension: number of distinct keys before the top-N cut},
     computed_at}

``page_views`` and every human figure exclude bots (``is_bot`` true);
``bot_views`` counts them; ``all_views`` = both. Unique visitors are distinct
``visitor_id``; logged-in users distinct ``visited_by`` other than ``AnonymousUser``;
new visitors those with a ``first_time_visit`` page view that day.

``stats_daily_dim``: one per day, dimension and key::

    {_id: "{dimension}|{day}|{ref}", day, dimension, ref, key, count, <extras>}

Dimensions (see ``DIMENSIONS``): event, path, country (+country_code), region
(+country, country_code), city (+region, country, country_code), browser, os,
device (device_family), device_type, referrer (host; "(direct)" when empty),
bot (the bots' browser_family), tutorial (slug +foss, language), course (foss
+language), exit_link (from exit_link_logs) and duration (visit_duration bucket,
keys ``DURATION_LABELS``). The longest lists are cut to the top ``TOP_N`` keys per
day (``distinct`` in stats_daily says how many there were). ``ref`` identifies a
key within its dimension (key and extras; a hash when long).

``stats_tutorials`` (snapshot): ``_id`` "summary", "tutorial|…", "course|…"; see
:func:`rollup_tutorials`.

``stats_watermarks``: ``{_id: "website_logs", stored_at, updated_at}``,
``{_id: "exit_link_logs", datetime, stored_at, updated_at}``, ``{_id: "lock", owner, expires}``.

nx-27017 (0.8.1) compatibility
------------------------------
Everything here runs on real MongoDB and on nx-27017. On nx-27017 the following
misbehave, so they are not used:

- date comparisons inside an aggregation ``$match`` (no or all documents match):
  the day's events are selected with ``find`` (which honours them) and the
  pipelines start with ``$match: {_id: {$in: <ids>}}``, in chunks of ``ID_CHUNK``;
- ``$group`` on a compound ``_id`` (``{a: "$x", b: "$y"}`` comes back as the
  literal strings): compound keys are one ``$concat`` string (``$ifNull`` +
  ``$toString`` per part, ``KEY_SEP`` between), split again in Python;
- ``$group`` on a boolean field (the keys come back as 0/1): booleans are used
  in ``$match`` only;
- ``$exists`` (ignores fields that hold null): ``{$ne: null}`` instead;
- ``$ne`` on a field some documents lack, when a ``$project`` follows (those
  documents are dropped): "not a bot" is ``{is_bot: {$nin: [true]}}``, which keeps
  events stored without ``is_bot``; ``$not`` is not implemented;
- ``$cond`` inside ``$sum`` (rejected): a separate ``$match`` per condition;
- ``$avg`` (SQLite float noise): averages are ``$sum`` / count in Python;
  ``$dateToString`` (has returned None) is not needed: days come from ``find`` ranges;
- a filter string that starts with a date and goes on (``"2024-03-01|x"``) matches
  nothing (find, update, delete, ``$in``/``$nin``), though a bare ``"2024-03-01"``
  works: dimension documents' ``_id`` start with the dimension, not the day;
- updates: ``$set`` of a date on an existing document stores a string, ``$max``
  on dates does nothing, and ``replace_one(..., upsert=True)`` ignores the filter's
  ``_id`` unless the replacement carries it: every stats document is written whole
  with ``ReplaceOne`` including its ``_id``; the lease stores epoch seconds.

Operators used: ``$match`` (``$in``, ``$nin``, ``$ne`` (with null only), ``$gt``/``$gte``/``$lt``/``$lte``
on numbers and strings), ``$project``, ``$concat``, ``$ifNull``, ``$toString``,
``$size``, ``$group`` with ``$sum``/``$first``/``$max``/``$addToSet``, ``$bucket``,
``$sort``, ``$limit``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pymongo
from pymongo import ReplaceOne
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)

WEBSITE_LOGS = "website_logs"
EXIT_LINK_LOGS = "exit_link_logs"
TUTORIAL_PROGRESS_LOGS = "tutorial_progress_logs"
STATS_DAILY = "stats_daily"
STATS_DAILY_DIM = "stats_daily_dim"
STATS_TUTORIALS = "stats_tutorials"
STATS_WATERMARKS = "stats_watermarks"

ANONYMOUS = "AnonymousUser"
WATCH_EVENT = "event.video.watch"
SAFETY_OVERLAP = timedelta(minutes=5)
LOCK_TTL = 600.0  # seconds; renewed after every day
TOP_N = 100
ID_CHUNK = 5000
KEY_SEP = "\x1f"
MAX_REF = 200

# Not {"$ne": True}: on nx-27017, $ne drops documents missing the field once $project follows.
HUMAN: dict[str, Any] = {"is_bot": {"$nin": [True]}}
DURATION_BOUNDARIES = [0, 10, 30, 60, 180, 600]
DURATION_LABELS = ["0-10s", "10-30s", "30-60s", "1-3m", "3-10m", "10m+"]
COURSE_BUCKETS = ["0-25", "25-50", "50-75", "75-100"]
MOST_REWATCHED = 10


@dataclass(frozen=True)
class Dimension:
    """A per-day breakdown: count of events per value of ``key`` (plus ``extras``)."""

    name: str
    key: str  # field path of the key
    extras: tuple[tuple[str, str], ...] = ()  # (output name, field path)
    match: dict[str, Any] = field(default_factory=lambda: dict(HUMAN))
    collection: str = WEBSITE_LOGS
    top: int | None = TOP_N

    @property
    def parts(self) -> list[str]:
        return [self.key, *(path for _, path in self.extras)]


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("event", "event_name"),
    Dimension("path", "path_info"),
    Dimension("country", "country", (("country_code", "country_code"),)),
    Dimension("region", "region", (("country", "country"), ("country_code", "country_code"))),
    Dimension("city", "city", (("region", "region"), ("country", "country"), ("country_code", "country_code"))),
    Dimension("browser", "browser_family"),
    Dimension("os", "os_family"),
    Dimension("device", "device_family"),
    Dimension("device_type", "device_type"),
    Dimension("referrer", "referrer"),  # grouped by full referrer, folded to the host in Python
    Dimension("bot", "browser_family", match={"is_bot": True}),
    Dimension("tutorial", "view_kwargs.tutorial",
              (("foss", "view_kwargs.foss"), ("language", "view_kwargs.language")),
              match={**HUMAN, "event_name": WATCH_EVENT}),
    Dimension("course", "view_kwargs.foss", (("language", "view_kwargs.language"),),
              match={**HUMAN, "event_name": WATCH_EVENT}),
    Dimension("exit_link", "exit_link", match={}, collection=EXIT_LINK_LOGS),
)
DIMENSION_EXTRAS: dict[str, tuple[str, ...]] = {d.name: tuple(n for n, _ in d.extras) for d in DIMENSIONS}
DIMENSION_EXTRAS["duration"] = ()

_DAILY_ADDITIVE = (
    "all_views", "page_views", "bot_views", "first_time_views", "returning_views", "logged_in_views",
    "anonymous_views", "tutorial_views", "exit_clicks", "duration_samples", "duration_total",
)


# ---------------------------------------------------------------- small helpers


def day_str(day: date) -> str:
    return day.isoformat()


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value)
    if isinstance(value, datetime):
        return _as_utc(value).date()
    return value


def _as_utc(value: datetime) -> datetime:
    """BSON dates come back naive unless the client is tz_aware; both mean UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _days_between(first: date, last: date) -> Iterator[date]:
    current = first
    while current <= last:
        yield current
        current += timedelta(days=1)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ref(parts: tuple[Any, ...]) -> str:
    """Identity of a key (with its extras) inside its dimension, usable in an _id."""
    texts = ["" if p is None else str(p) for p in parts]
    ref = "|".join(texts)
    if len(ref) > MAX_REF or any("|" in t for t in texts) or (len(parts) == 1 and parts[0] is None):
        digest = hashlib.sha1(json.dumps(list(parts), default=str).encode()).hexdigest()[:20]
        return "#" + digest
    return ref


def referrer_host(referrer: Any) -> str:
    """Host part of a referrer; "(direct)" when there is none."""
    if not referrer:
        return "(direct)"
    try:
        host = urlsplit(str(referrer)).hostname
    except ValueError:
        host = None
    return host or "(other)"


def duration_label(seconds: float) -> str:
    """Bucket label (one of DURATION_LABELS) of a visit duration in seconds."""
    for upper, label in zip(DURATION_BOUNDARIES[1:], DURATION_LABELS, strict=False):
        if seconds < upper:
            return label
    return DURATION_LABELS[-1]


def _key_expression(paths: list[str]) -> Any:
    """$group key for one or more fields: the field itself, or one $concat string.

    nx-27017 does not group by a compound _id ({a: "$x", b: "$y"}): a single
    string joined with KEY_SEP works everywhere and is split in Python.
    """
    if len(paths) == 1:
        return f"${paths[0]}"
    pieces: list[Any] = []
    for i, path in enumerate(paths):
        if i:
            pieces.append(KEY_SEP)
        pieces.append({"$ifNull": [{"$toString": f"${path}"}, ""]})
    return {"$concat": pieces}


def _split_key(value: Any, n: int) -> tuple[Any, ...]:
    if n == 1:
        return (value,)
    parts = (value or "").split(KEY_SEP)
    parts = (parts + [""] * n)[:n]
    return tuple(p if p != "" else None for p in parts)


def _count_by(coll: Any, ids: list[Any], match: dict[str, Any], paths: list[str]) -> Counter:
    """Events per key (a tuple of the ``paths`` values) among ``ids`` matching ``match``."""
    pipeline: list[dict[str, Any]] = [{"$match": {"_id": {"$in": ids}, **match}}]
    if len(paths) == 1:
        group_id: Any = f"${paths[0]}"
    else:
        pipeline.append({"$project": {"k": _key_expression(paths)}})
        group_id = "$k"
    pipeline.append({"$group": {"_id": group_id, "n": {"$sum": 1}}})
    counts: Counter = Counter()
    for row in coll.aggregate(pipeline):
        counts[_split_key(row["_id"], len(paths))] += row["n"]
    return counts


def _ids_in_day(coll: Any, day: date, chunk: int) -> Iterator[list[Any]]:
    """The _ids of a day's documents, chunked (find honours date ranges; see the docstring)."""
    start, end = day_bounds(day)
    cursor = coll.find({"datetime": {"$gte": start, "$lt": end}}, {"_id": 1})
    return _chunks((doc["_id"] for doc in cursor), chunk)


def _top(counts: Counter, limit: int | None) -> list[tuple[tuple[Any, ...], int]]:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], [("" if p is None else str(p)) for p in kv[0]]))
    return items if limit is None else items[:limit]


# ---------------------------------------------------------------- indexes and lease


def ensure_indexes(db: Any) -> None:
    """Indexes the rollups and the dashboard reads use (idempotent)."""
    db[STATS_DAILY].create_index([("day", pymongo.ASCENDING)])
    db[STATS_DAILY_DIM].create_index([("day", pymongo.ASCENDING)])
    db[STATS_DAILY_DIM].create_index([("dimension", pymongo.ASCENDING), ("day", pymongo.ASCENDING)])
    db[STATS_TUTORIALS].create_index([("kind", pymongo.ASCENDING)])


def acquire_lock(db: Any, owner: str, ttl: float = LOCK_TTL) -> bool:
    """Take (or renew) the rollup lease; False when another live run holds it.

    Upsert on a filter that only matches a free or expired lease (or our own): if
    the lease is held, the upsert collides with the existing _id. Expiry is epoch
    seconds (nx-27017 stores dates written by $set as strings).
    """
    now = time.time()
    try:
        db[STATS_WATERMARKS].update_one(
            {"_id": "lock", "$or": [{"expires": {"$lt": now}}, {"owner": owner}]},
            {"$set": {"owner": owner, "expires": now + ttl}},
            upsert=True,
        )
        return True
    except DuplicateKeyError:
        return False


def release_lock(db: Any, owner: str) -> None:
    db[STATS_WATERMARKS].delete_one({"_id": "lock", "owner": owner})


# ---------------------------------------------------------------- one day


_COUNTED_FIELDS = ("is_bot", "event_name", "visit_duration", "country", "country_code", "region", "city",
                   "view_kwargs")


def _as_key_part(value: Any) -> Any:
    """What $ifNull + $toString + _split_key make of a value, for keys counted in Python."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _dotted(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _python_counts(docs: Iterable[dict[str, Any]]) -> tuple[dict[str, Counter], Counter]:
    """Counts of the multi-field dimensions and the duration buckets of one chunk (people only)."""
    multi = [d for d in DIMENSIONS if d.collection == WEBSITE_LOGS and len(d.parts) > 1]
    counts: dict[str, Counter] = {d.name: Counter() for d in multi}
    durations: Counter = Counter()
    for doc in docs:
        if doc.get("is_bot") is True:
            continue
        watch = doc.get("event_name") == WATCH_EVENT
        for dim in multi:
            if dim.match.get("event_name") == WATCH_EVENT and not watch:
                continue
            counts[dim.name][tuple(_as_key_part(_dotted(doc, p)) for p in dim.parts)] += 1
        seconds = doc.get("visit_duration")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            durations[(duration_label(seconds),)] += 1
    return counts, durations


def compute_day(db: Any, day: date, chunk: int = ID_CHUNK) -> tuple[dict[str, Any], dict[str, Counter]]:
    """All figures of one day from the raw collections: (scalars, counts per dimension)."""
    logs, exits = db[WEBSITE_LOGS], db[EXIT_LINK_LOGS]
    dims: dict[str, Counter] = {d.name: Counter() for d in DIMENSIONS}
    dims["duration"] = Counter()
    visitors: Counter = Counter()
    new_visitors: Counter = Counter()
    users: Counter = Counter()
    all_views = 0
    duration_samples = 0
    duration_total = 0.0
    with_duration = {**HUMAN, "visit_duration": {"$ne": None, "$gte": 0}}

    for ids in _ids_in_day(logs, day, chunk):
        all_views += len(ids)
        visitors += _count_by(logs, ids, HUMAN, ["visitor_id"])
        new_visitors += _count_by(logs, ids, {**HUMAN, "first_time_visit": True}, ["visitor_id"])
        users += _count_by(logs, ids, {**HUMAN, "visited_by": {"$nin": [ANONYMOUS, None]}}, ["visited_by"])
        for dim in DIMENSIONS:
            if dim.collection == WEBSITE_LOGS and len(dim.parts) == 1:
                dims[dim.name] += _count_by(logs, ids, dim.match, dim.parts)
        # Multi-field keys and duration buckets are counted here from one projected
        # find: nx-27017 cannot run $project+$concat or $bucket in SQL and falls back
        # to copying the whole collection per pipeline (151 s per chunk at 1M events).
        docs = logs.find({"_id": {"$in": ids}}, dict.fromkeys(_COUNTED_FIELDS, 1))
        counts, buckets = _python_counts(docs)
        for name, counter in counts.items():
            dims[name] += counter
        dims["duration"] += buckets
        total = {"$group": {"_id": None, "n": {"$sum": 1}, "total": {"$sum": "$visit_duration"}}}
        for row in logs.aggregate([{"$match": {"_id": {"$in": ids}, **with_duration}}, total]):
            duration_samples += row["n"]
            duration_total += row["total"] or 0

    for ids in _ids_in_day(exits, day, chunk):
        for dim in DIMENSIONS:
            if dim.collection == EXIT_LINK_LOGS:
                dims[dim.name] += _count_by(exits, ids, dim.match, dim.parts)

    # Referrers: grouped by the full referrer on the server, folded to the host here.
    hosts: Counter = Counter()
    for (referrer,), n in dims["referrer"].items():
        hosts[(referrer_host(referrer),)] += n
    dims["referrer"] = hosts

    page_views = sum(visitors.values())
    unique = {k for (k,) in visitors if k is not None}
    new = {k for (k,) in new_visitors if k is not None}
    logged_in_views = sum(users.values())
    first_time_views = sum(new_visitors.values())
    scalars = {
        "all_views": all_views,
        "page_views": page_views,
        "bot_views": sum(dims["bot"].values()),
        "unique_visitors": len(unique),
        "new_visitors": len(new),
        "returning_visitors": len(unique - new),
        "first_time_views": first_time_views,
        "returning_views": page_views - first_time_views,
        "logged_in_users": len({k for (k,) in users if k is not None}),
        "logged_in_views": logged_in_views,
        "anonymous_views": page_views - logged_in_views,
        "tutorial_views": sum(dims["tutorial"].values()),
        "exit_clicks": sum(dims["exit_link"].values()),
        "duration_samples": duration_samples,
        "duration_total": round(duration_total, 3),
        "duration_avg": round(duration_total / duration_samples, 3) if duration_samples else None,
    }
    return scalars, dims


def rollup_day(db: Any, day: date | datetime | str, now: datetime | None = None,
               chunk: int = ID_CHUNK) -> dict[str, Any] | None:
    """Recompute one UTC day completely and replace its stats documents.

    Returns the day's stats_daily document, or None when the day has no events
    (its stats documents are then removed).
    """
    day = _as_date(day)
    key = day_str(day)
    now = now or datetime.now(UTC)
    scalars, dims = compute_day(db, day, chunk)
    daily, dim_coll = db[STATS_DAILY], db[STATS_DAILY_DIM]
    if scalars["all_views"] == 0 and scalars["exit_clicks"] == 0:
        dim_coll.delete_many({"day": key})
        daily.delete_one({"_id": key})
        return None

    spec = {d.name: d for d in DIMENSIONS}
    writes: list[ReplaceOne] = []
    keep: list[str] = []
    distinct: dict[str, int] = {}
    for name, counts in dims.items():
        distinct[name] = len(counts)
        extras = DIMENSION_EXTRAS[name]
        limit = spec[name].top if name in spec else None
        for parts, n in _top(counts, limit):
            ref = _ref(parts)
            doc_id = f"{name}|{key}|{ref}"  # not day-first: see the nx-27017 notes
            doc = {"_id": doc_id, "day": key, "dimension": name, "ref": ref, "key": parts[0], "count": n}
            doc.update(zip(extras, parts[1:], strict=True))
            writes.append(ReplaceOne({"_id": doc_id}, doc, upsert=True))
            keep.append(doc_id)
    start, _ = day_bounds(day)
    doc = {"_id": key, "day": key, "date": start, **scalars, "distinct": distinct, "computed_at": now}
    if writes:
        dim_coll.bulk_write(writes, ordered=False)
    dim_coll.delete_many({"day": key, "_id": {"$nin": keep}})
    # Whole-document replace (with _id): see the module docstring on nx-27017 updates.
    daily.replace_one({"_id": key}, doc, upsert=True)
    return doc


# ---------------------------------------------------------------- what changed


def _newest(coll: Any, field_name: str, newest_first: bool = True) -> datetime | None:
    doc = coll.find_one({field_name: {"$ne": None}}, {field_name: 1},
                        sort=[(field_name, pymongo.DESCENDING if newest_first else pymongo.ASCENDING)])
    value = doc.get(field_name) if doc else None
    return _as_utc(value) if isinstance(value, datetime) else None


def _all_days(coll: Any) -> set[date]:
    first, last = _newest(coll, "datetime", newest_first=False), _newest(coll, "datetime")
    if first is None or last is None:
        return set()
    return set(_days_between(first.date(), last.date()))


def _days_since(coll: Any, field_name: str, cutoff: datetime) -> tuple[set[date], datetime | None, int]:
    """Days (of ``datetime``) of documents whose ``field_name`` > cutoff, max field value, count."""
    days: set[date] = set()
    newest: datetime | None = None
    seen = 0
    for doc in coll.find({field_name: {"$gt": cutoff}}, {"datetime": 1, field_name: 1}):
        seen += 1
        when, mark = doc.get("datetime"), doc.get(field_name)
        if isinstance(when, datetime):
            days.add(_as_utc(when).date())
        if isinstance(mark, datetime):
            mark = _as_utc(mark)
            newest = mark if newest is None or mark > newest else newest
    return days, newest, seen


def _days_changed_since(coll: Any, cutoff_ts: float) -> tuple[set[date], float | None]:
    """Days (of ``datetime``) of documents with ``updated_ts`` > cutoff, and the newest value."""
    days: set[date] = set()
    newest: float | None = None
    for doc in coll.find({"updated_ts": {"$gt": cutoff_ts}}, {"datetime": 1, "updated_ts": 1}):
        when, mark = doc.get("datetime"), doc.get("updated_ts")
        if isinstance(when, datetime):
            days.add(_as_utc(when).date())
        if isinstance(mark, int | float):
            newest = mark if newest is None or mark > newest else newest
    return days, newest


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _watermark(db: Any, name: str) -> dict[str, Any] | None:
    doc = db[STATS_WATERMARKS].find_one({"_id": name})
    if doc is None:
        return None
    return {k: _as_utc(v) if isinstance(v, datetime) else v for k, v in doc.items()}


def affected_days(db: Any, overlap: timedelta = SAFETY_OVERLAP) -> tuple[set[date], dict[str, dict[str, Any]], int]:
    """Days to recompute since the watermarks, the new watermarks, and events seen."""
    logs, exits = db[WEBSITE_LOGS], db[EXIT_LINK_LOGS]
    days: set[date] = set()
    marks: dict[str, dict[str, Any]] = {}

    wm = _watermark(db, WEBSITE_LOGS)
    if wm is None or wm.get("stored_at") is None:
        newest = _newest(logs, "stored_at")  # read before the days: later events wait for the next run
        days |= _all_days(logs)
        seen = logs.estimated_document_count()
    else:
        new_days, newest, seen = _days_since(logs, "stored_at", wm["stored_at"] - overlap)
        days |= new_days
        newest = _later(wm["stored_at"], newest)
    # Page views also change after they were stored (the tracker's duration and
    # title arrive later): updated_ts (epoch seconds) finds those days too.
    since = wm.get("updated_ts") if wm else None
    if wm is None:  # first run: every day is recomputed anyway
        latest = logs.find_one({"updated_ts": {"$gt": 0}}, {"updated_ts": 1}, sort=[("updated_ts", -1)])
        newest_ts = latest["updated_ts"] if latest else None
    else:
        changed_days, newest_ts = _days_changed_since(logs, (since or 0) - overlap.total_seconds())
        days |= changed_days
    marks[WEBSITE_LOGS] = {"stored_at": newest, "updated_ts": max(filter(None, (since, newest_ts)), default=None)}

    wm = _watermark(db, EXIT_LINK_LOGS)
    if wm is None or wm.get("datetime") is None:
        newest_dt, newest_st = _newest(exits, "datetime"), _newest(exits, "stored_at")
        days |= _all_days(exits)
    else:
        by_time, newest_dt, _ = _days_since(exits, "datetime", wm["datetime"] - overlap)
        cutoff = (wm.get("stored_at") or wm["datetime"]) - overlap
        by_store, newest_st, _ = _days_since(exits, "stored_at", cutoff)
        days |= by_time | by_store
        newest_dt, newest_st = _later(wm["datetime"], newest_dt), _later(wm.get("stored_at"), newest_st)
    marks[EXIT_LINK_LOGS] = {"datetime": newest_dt, "stored_at": newest_st}
    return days, marks, seen


# ---------------------------------------------------------------- the whole run


def run_rollups(db: Any, now: datetime | None = None, tutorials: dict[str, list[str]] | None = None,
                overlap: timedelta = SAFETY_OVERLAP, lock_ttl: float = LOCK_TTL) -> dict[str, Any]:
    """One incremental, idempotent rollup run (what beat schedules).

    ``tutorials`` maps foss -> the titles of its tutorials (the course), used for
    the course progress distribution. Returns what was done::

        {"skipped": None | "locked" | "lease lost", "days": ["YYYY-MM-DD", ...], "events": n,
         "watermarks": {...}, "tutorials": {...}}
    """
    now = now or datetime.now(UTC)
    owner = uuid.uuid4().hex
    if not acquire_lock(db, owner, lock_ttl):
        log.info("eventlog rollups: another run holds the lease; skipping")
        return {"skipped": "locked", "days": [], "events": 0, "watermarks": {}, "tutorials": {}}
    try:
        ensure_indexes(db)
        days, marks, seen = affected_days(db, overlap)
        done: list[str] = []
        for day in sorted(days):
            rollup_day(db, day, now)
            done.append(day_str(day))
            if not acquire_lock(db, owner, lock_ttl):  # renew; lost only if a day took longer than the TTL
                log.warning("eventlog rollups: lease lost after %s; leaving the rest to the next run", done[-1])
                return {"skipped": "lease lost", "days": done, "events": seen, "watermarks": {}, "tutorials": {}}
        for name, mark in marks.items():
            # whole-document replace (with _id); dates stay dates on every server
            db[STATS_WATERMARKS].replace_one({"_id": name}, {"_id": name, **mark, "updated_at": now}, upsert=True)
        tutorial_summary = rollup_tutorials(db, tutorials, now)
    finally:
        release_lock(db, owner)
    return {
        "skipped": None,
        "days": done,
        "events": seen,
        "watermarks": {name: {k: v.isoformat() if isinstance(v, datetime) else v for k, v in mark.items()}
                       for name, mark in marks.items()},
        "tutorials": tutorial_summary,
    }


# ---------------------------------------------------------------- tutorials (snapshot)


def _course_bucket(percent: float) -> str:
    for upper, label in zip((25, 50, 75), COURSE_BUCKETS, strict=False):
        if percent < upper:
            return label
    return COURSE_BUCKETS[-1]


def _group_rows(coll: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(coll.aggregate(pipeline))


def rollup_tutorials(db: Any, tutorials: dict[str, list[str]] | None = None,
                     now: datetime | None = None) -> dict[str, Any]:
    """Recompute the tutorial progress snapshot into stats_tutorials.

    Documents (``_id``):

    - ``"tutorial|<foss>|<language>|<tutorial>"``, kind "tutorial": foss, language,
      tutorial, learners, completions, completions_manual, completion_rate,
      avg_minutes_watched, total_minutes, total_visits, avg_visits, rewatchers
      (learners with visits > 1);
    - ``"course|<foss>|<language>"``, kind "course": foss, language,
      tutorials_in_course, learners, completed_course, distribution
      ({"0-25": n, "25-50": n, "50-75": n, "75-100": n}: learners by the share of
      the course's tutorials they completed; 100 % falls in 75-100). The course is
      ``tutorials[foss]`` when given, else every tutorial of that foss seen in the logs;
    - ``"summary"``, kind "summary": learners (distinct users), records,
      completions, completion_rate, avg_minutes_watched, total_visits,
      avg_visits_per_user, rewatched_records, most_rewatched (top tutorials by
      rewatchers, then total visits).

    Returns the summary document.
    """
    now = now or datetime.now(UTC)
    coll = db[TUTORIAL_PROGRESS_LOGS]
    key = _key_expression(["foss", "language", "tutorial"])
    per_tutorial: dict[tuple[Any, ...], dict[str, Any]] = {}

    def tutorial_entry(k: Any) -> dict[str, Any]:
        parts = _split_key(k, 3)
        return per_tutorial.setdefault(parts, {
            "foss": parts[0], "language": parts[1], "tutorial": parts[2], "learners": 0, "completions": 0,
            "completions_manual": 0, "minutes_watched": 0, "total_minutes": None, "total_visits": 0,
            "rewatchers": 0,
        })

    watched = {"$size": {"$ifNull": ["$minutes_watched", []]}}
    for row in _group_rows(coll, [
        {"$project": {"k": key, "w": watched, "visits": 1, "total_minutes": 1}},
        {"$group": {"_id": "$k", "n": {"$sum": 1}, "w": {"$sum": "$w"}, "visits": {"$sum": "$visits"},
                    "total_minutes": {"$max": "$total_minutes"}}},
    ]):
        entry = tutorial_entry(row["_id"])
        entry.update(learners=row["n"], minutes_watched=row["w"] or 0, total_visits=row["visits"] or 0,
                     total_minutes=row["total_minutes"])
    # $cond inside $sum is rejected by nx-27017: one $match per condition instead.
    for match, name in (({"completed": True}, "completions"),
                        ({"completed": True, "manual": True}, "completions_manual"),
                        ({"visits": {"$gt": 1}}, "rewatchers")):
        for row in _group_rows(coll, [{"$match": match}, {"$project": {"k": key}},
                                      {"$group": {"_id": "$k", "n": {"$sum": 1}}}]):
            tutorial_entry(row["_id"])[name] = row["n"]

    # Course progress: per (user, foss, language), the completed tutorials.
    user_key = _key_expression(["username", "foss", "language"])
    learners_of: dict[tuple[Any, Any], set[Any]] = {}
    for row in _group_rows(coll, [{"$project": {"k": user_key}}, {"$group": {"_id": "$k"}}]):
        user, foss, language = _split_key(row["_id"], 3)
        learners_of.setdefault((foss, language), set()).add(user)
    completed_by: dict[tuple[Any, Any, Any], set[Any]] = {}
    for row in _group_rows(coll, [{"$match": {"completed": True}},
                                  {"$project": {"k": user_key, "t": "$tutorial"}},
                                  {"$group": {"_id": "$k", "t": {"$addToSet": "$t"}}}]):
        completed_by[_split_key(row["_id"], 3)] = set(row["t"] or [])
    seen_titles: dict[Any, set[Any]] = {}
    for foss, _language, title in per_tutorial:
        seen_titles.setdefault(foss, set()).add(title)

    docs: list[dict[str, Any]] = []
    for parts, entry in sorted(per_tutorial.items(), key=lambda kv: [str(p) for p in kv[0]]):
        learners = entry["learners"]
        doc = {
            "_id": "tutorial|" + _ref(parts), "kind": "tutorial",
            **{k: entry[k] for k in ("foss", "language", "tutorial", "learners", "completions",
                                     "completions_manual", "total_minutes", "total_visits", "rewatchers")},
            "completion_rate": round(entry["completions"] / learners, 4) if learners else 0.0,
            "avg_minutes_watched": round(entry["minutes_watched"] / learners, 2) if learners else 0.0,
            "avg_visits": round(entry["total_visits"] / learners, 2) if learners else 0.0,
            "computed_at": now,
        }
        docs.append(doc)
    for (foss, language), users in sorted(learners_of.items(), key=lambda kv: [str(p) for p in kv[0]]):
        course = set(tutorials[foss]) if tutorials and foss in tutorials else seen_titles.get(foss, set())
        distribution = dict.fromkeys(COURSE_BUCKETS, 0)
        full = 0
        for user in users:
            done = len(completed_by.get((user, foss, language), set()) & course)
            percent = 100.0 * done / len(course) if course else 0.0
            distribution[_course_bucket(percent)] += 1
            full += bool(course) and done == len(course)
        docs.append({
            "_id": "course|" + _ref((foss, language)), "kind": "course", "foss": foss, "language": language,
            "tutorials_in_course": len(course), "learners": len(users), "completed_course": full,
            "distribution": distribution, "computed_at": now,
        })

    usernames = {row["_id"] for row in _group_rows(coll, [{"$group": {"_id": "$username"}}])} - {None}
    records = sum(e["learners"] for e in per_tutorial.values())
    completions = sum(e["completions"] for e in per_tutorial.values())
    visits = sum(e["total_visits"] for e in per_tutorial.values())
    minutes = sum(e["minutes_watched"] for e in per_tutorial.values())
    rewatched = sorted((e for e in per_tutorial.values() if e["rewatchers"] > 0),
                       key=lambda e: (-e["rewatchers"], -e["total_visits"], str(e["foss"]), str(e["language"]),
                                      str(e["tutorial"])))
    summary = {
        "_id": "summary", "kind": "summary", "learners": len(usernames), "records": records,
        "completions": completions,
        "completion_rate": round(completions / records, 4) if records else 0.0,
        "avg_minutes_watched": round(minutes / records, 2) if records else 0.0,
        "total_visits": visits,
        "avg_visits_per_user": round(visits / len(usernames), 2) if usernames else 0.0,
        "rewatched_records": sum(e["rewatchers"] for e in per_tutorial.values()),
        "most_rewatched": [{k: e[k] for k in ("foss", "language", "tutorial", "rewatchers", "total_visits")}
                           for e in rewatched[:MOST_REWATCHED]],
        "computed_at": now,
    }
    docs.append(summary)
    stats = db[STATS_TUTORIALS]
    stats.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
    stats.delete_many({"_id": {"$nin": [d["_id"] for d in docs]}})
    return {k: v for k, v in summary.items() if k not in ("_id", "kind", "computed_at")}


# ---------------------------------------------------------------- dashboard reads


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_id", "computed_at")}


def read_daily(db: Any, start: date | datetime | str, end: date | datetime | str, limit: int = 20) -> dict[str, Any]:
    """What the dashboard shows for the days start..end (inclusive), from stats_* only.

    Returns::

        {"start", "end",
         "days": [{"day", <stats_daily figures>}, ...]  (every day; zeros when none),
         "totals": {<additive figures summed>, "duration_avg", "visitor_days", "user_days"},
         "top": {dimension: [{"key", "count", <extras>}, ...]}  (merged over the range),
         "duration": [{"bucket", "count"}, ...]  (in bucket order)}

    Distinct counts cannot be added across days: ``visitor_days`` / ``user_days``
    are sums of the daily unique visitors / logged-in users (someone seen on two
    days counts twice). The daily top lists were cut to TOP_N keys, so merged
    counts of long-tail keys (paths, referrers, exit links) are lower bounds.
    """
    first, last = day_str(_as_date(start)), day_str(_as_date(end))
    daily = {doc["day"]: doc for doc in db[STATS_DAILY].find({"day": {"$gte": first, "$lte": last}})}
    zero = dict.fromkeys((*_DAILY_ADDITIVE, "unique_visitors", "new_visitors", "returning_visitors",
                          "logged_in_users"), 0)
    days: list[dict[str, Any]] = []
    for day in _days_between(_as_date(start), _as_date(end)):
        doc = daily.get(day_str(day))
        days.append({**zero, "duration_avg": None, **_clean(doc)} if doc else
                    {**zero, "day": day_str(day), "date": day_bounds(day)[0], "duration_avg": None})
    totals: dict[str, Any] = {name: sum(d.get(name) or 0 for d in days) for name in _DAILY_ADDITIVE}
    totals["duration_total"] = round(totals["duration_total"], 3)
    totals["duration_avg"] = (round(totals["duration_total"] / totals["duration_samples"], 3)
                              if totals["duration_samples"] else None)
    totals["visitor_days"] = sum(d.get("unique_visitors") or 0 for d in days)
    totals["user_days"] = sum(d.get("logged_in_users") or 0 for d in days)

    top: dict[str, list[dict[str, Any]]] = {}
    for name, extras in DIMENSION_EXTRAS.items():
        group: dict[str, Any] = {"_id": "$ref", "count": {"$sum": "$count"}, "key": {"$first": "$key"}}
        group.update({extra: {"$first": f"${extra}"} for extra in extras})
        pipeline: list[dict[str, Any]] = [
            {"$match": {"dimension": name, "day": {"$gte": first, "$lte": last}}},
            {"$group": group},
            {"$sort": {"count": -1, "_id": 1}},
        ]
        if name != "duration":
            pipeline.append({"$limit": limit})
        rows = [{"key": row["key"], "count": row["count"], **{e: row.get(e) for e in extras}}
                for row in db[STATS_DAILY_DIM].aggregate(pipeline)]
        top[name] = rows
    counts = {row["key"]: row["count"] for row in top.pop("duration")}
    duration = [{"bucket": label, "count": counts.get(label, 0)} for label in DURATION_LABELS]
    return {"start": first, "end": last, "days": days, "totals": totals, "top": top, "duration": duration}


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
        clean = {k: v for k, v in _clean(doc).items() if k != "kind"}
        if kind == "summary":
            summary = clean
        elif kind == "tutorial":
            tutorials.append(clean)
        elif kind == "course":
            courses.append(clean)
    tutorials.sort(key=lambda t: (-(t.get("learners") or 0), str(t.get("foss")), str(t.get("language")),
                                  str(t.get("tutorial"))))
    courses.sort(key=lambda c: (str(c.get("foss")), str(c.get("language"))))
    return {"summary": summary, "tutorials": tutorials, "courses": courses, "computed_at": computed_at}
