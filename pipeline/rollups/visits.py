"""Visits: a visitor's page views with no gap longer than the visit gap.

One ``stats_visits`` document per visit, holding its page views (packed, :mod:`.packing`: time, event id,
path, event name, engaged seconds, landing UTM, user), so that a visit can be
re-derived from its own document plus new events, without reading raw logs:

- a new, redelivered, late or changed page view of visitor V at time t can only
  change V's visits that lie within the gap of t (it may extend one, or join two);
- those visits' page views plus the new ones (deduplicated by event id, the new
  copy winning) are sorted and split again wherever the gap is exceeded;
- visits that came out different are written (the ``_id`` is the id of the first
  page view), visits that no longer exist are deleted, identical ones are left alone.

So the cost follows the new events (and the visits they touch), a visit that spans
bucket, hour or day boundaries is handled like any other, and running the same
events through twice changes nothing. A visit counts in the bucket (and day) where
it *started*; its start bucket is recomputed when it changes.

People only: bot page views and page views without a ``visitor_id`` (Do Not
Track) make no visits. Visit duration = last page view time - first page view
time + the last page's engaged time (``visit_duration``, from the tracker) when known.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pymongo
from pymongo import DeleteMany, ReplaceOne

from .buckets import VisitRow, visit_row
from .common import (
    ANONYMOUS,
    FLOW_STEPS,
    STATS_VISITS,
    UTM_FIELDS,
    as_utc,
    chunks,
    find_by_ids,
    from_epoch,
    is_number,
    site_of,
)
from .packing import pack, unpack

VISIT_FIELDS = ("_id", "datetime", "is_bot", "visitor_id", "visited_by", "path_info", "event_name", "visit_duration",
                "site", *UTM_FIELDS)
LOOKUP_CHUNK = 500
LOOKUP_THREADS = 4

Page = list[Any]  # [ts, event id, path, event name, engaged seconds | None, utm | None, user | None]


def ensure_indexes(db: Any) -> None:
    coll = db[STATS_VISITS]
    coll.create_index([("vkey", pymongo.ASCENDING), ("end_ts", pymongo.ASCENDING)])
    # Redundant on MongoDB (the compound index serves vkey alone), but nx-27017 uses an index for
    # an equality only when one is named for that single field; without it every lookup of a
    # visitor reads every stored visit.
    coll.create_index([("vkey", pymongo.ASCENDING)])
    coll.create_index([("start_ts", pymongo.ASCENDING)])


def page_of(doc: dict[str, Any]) -> tuple[tuple[str, str], Page] | None:
    """(site, visitor), page of a raw page view; None when it makes no visit."""
    when, visitor = doc.get("datetime"), doc.get("visitor_id")
    if doc.get("is_bot") is True or visitor is None or not isinstance(when, datetime):
        return None
    utm = [doc.get(f) if isinstance(doc.get(f), str) and doc.get(f) else None for f in UTM_FIELDS]
    user = doc.get("visited_by")
    page: Page = [as_utc(when).timestamp(), str(doc["_id"]), doc.get("path_info"), doc.get("event_name"),
                  float(doc["visit_duration"]) if is_number(doc.get("visit_duration")) else None,
                  utm if any(utm) else None, user if user not in (ANONYMOUS, None) else None]
    return (site_of(doc), str(visitor)), page


def split(pages: Iterable[Page], gap: float) -> list[list[Page]]:
    """Pages (any order) cut into visits wherever two page views are more than ``gap`` apart."""
    visits: list[list[Page]] = []
    for page in sorted(pages, key=lambda p: (p[0], p[1])):
        if visits and page[0] - visits[-1][-1][0] <= gap:
            visits[-1].append(page)
        else:
            visits.append([page])
    return visits


def visit_doc(site: str, visitor: str, pages: list[Page]) -> dict[str, Any]:
    """A visit's document (``pages`` unpacked: :func:`sessionize` packs it when writing)."""
    first, last = pages[0], pages[-1]
    users = [p[6] for p in pages if p[6]]
    return {
        "_id": first[1], "vkey": visitor, "site": site,
        "start": from_epoch(first[0]), "start_ts": first[0], "end_ts": last[0],
        "n": len(pages), "pages": pages,
        "steps": [[p[2], p[3]] for p in pages[:FLOW_STEPS]], "exit": last[2],
        "utm": first[5], "user": users[0] if users else None,
        "duration": round(last[0] - first[0] + (last[4] or 0.0), 3),
    }


def _near(times: list[float], start: float, end: float, gap: float) -> bool:
    """Whether a time in sorted ``times`` lies within [start - gap, end + gap]."""
    i = bisect.bisect_left(times, start - gap)
    return i < len(times) and times[i] <= end + gap


Key = tuple[str, str]  # (site, visitor)


class VisitIndex:
    """Where each visitor's visits lie, in memory for one run: (site, visitor) -> {visit id: end}.

    A run that folds many visitors (the first run over every stored event, a refresh of a
    day) looks their visits up here instead of asking the store once per visitor. Not with
    "vkey $in [...]": nx-27017 answers every $in by reading every document, so a first run
    of 1,000,000 events made hundreds of such queries, each reading all the visits stored so far.
    Built from one read of the stored visits, then kept up to date with what the run writes.
    """

    def __init__(self) -> None:
        self.ends: dict[Key, dict[str, float]] = {}

    @classmethod
    def load(cls, db: Any) -> VisitIndex:
        index = cls()
        for doc in db[STATS_VISITS].find({}, {"vkey": 1, "site": 1, "end_ts": 1}):
            index.ends.setdefault((doc.get("site") or "", doc["vkey"]), {})[doc["_id"]] = doc["end_ts"]
        return index

    def ids_ending_since(self, key: Key, since: float) -> list[str]:
        return [visit_id for visit_id, end in self.ends.get(key, {}).items() if end >= since]

    def wrote(self, key: Key, doc: dict[str, Any]) -> None:
        self.ends.setdefault(key, {})[doc["_id"]] = doc["end_ts"]

    def deleted(self, key: Key, visit_id: str) -> None:
        self.ends.get(key, {}).pop(visit_id, None)


def _existing(db: Any, since: dict[Key, float], index: VisitIndex | None) -> dict[Key, list[dict[str, Any]]]:
    """The stored visits of these visitors that end at or after their ``since``."""
    found: dict[Key, list[dict[str, Any]]] = {}
    if index is not None:
        ids = [visit_id for key, after in since.items() for visit_id in index.ids_ending_since(key, after)]
        for doc in find_by_ids(db[STATS_VISITS], ids):
            found.setdefault((doc.get("site") or "", doc["vkey"]), []).append(doc)
        return found

    def visits_of(item: tuple[Key, float]) -> list[dict[str, Any]]:
        (site, visitor), after = item
        docs = db[STATS_VISITS].find({"vkey": visitor, "end_ts": {"$gte": after}})
        return [doc for doc in docs if (doc.get("site") or "") == site]

    # An indexed equality per visitor: the cost follows the visitors, not the visits stored. A few
    # at a time: each waits mostly for its round trip.
    with ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="eventlog-rollup-lookup") as pool:
        for key, docs in zip(since, pool.map(visits_of, since.items()), strict=True):
            if docs:
                found[key] = docs
    return found


Touched = set[tuple[float, str]]  # (start time, site) of visits written or deleted
# What changed in a visit's start bucket, in order: (start time, site, visit id, its row | None: gone)
Changes = list[tuple[float, str, str, VisitRow | None]]


def sessionize(db: Any, events: Iterable[dict[str, Any]], gap: float, index: VisitIndex | None = None,
               before_write: Callable[[Touched], None] | None = None) -> tuple[Touched, int, Changes]:
    """Fold new or changed raw page views into stats_visits (and into ``index``, when given).

    Returns the (start time, site) of every visit written or deleted (their start
    buckets must be recomputed), the number of visits written, and the changes to the
    rows of their start buckets; ``before_write`` is told each step's touched visits
    before that step writes (:mod:`.journal`).
    """
    new: dict[Key, dict[str, Page]] = {}
    for doc in events:
        found = page_of(doc)
        if found is not None:
            key, page = found
            new.setdefault(key, {})[page[1]] = page
    touched: Touched = set()
    changes: Changes = []
    written = 0
    keys = sorted(new)
    for chunk in chunks(keys, LOOKUP_CHUNK):
        existing = _existing(db, {key: min(p[0] for p in new[key].values()) - gap for key in chunk}, index)
        writes: list[Any] = []
        gone: list[Any] = []
        done: list[tuple[Key, dict[str, Any] | None, str]] = []  # for the index, once written
        for key in chunk:
            pages = new[key]
            times = sorted(p[0] for p in pages.values())
            affected = [v for v in existing.get(key, []) if _near(times, v["start_ts"], v["end_ts"], gap)]
            merged: dict[str, Page] = {p[1]: p for v in affected for p in unpack(v.get("pages")) or []}
            merged.update(pages)
            old = {v["_id"]: v for v in affected}
            for visit_pages in split(merged.values(), gap):
                doc = visit_doc(key[0], key[1], visit_pages)
                before = old.pop(doc["_id"], None)
                if before is not None and unpack(before.get("pages")) == doc["pages"]:
                    continue  # unchanged: nothing to write, nothing to recompute
                if before is not None:
                    touched.add((before["start_ts"], key[0]))
                    changes.append((before["start_ts"], key[0], doc["_id"], None))
                touched.add((doc["start_ts"], key[0]))
                changes.append((doc["start_ts"], key[0], doc["_id"], visit_row(doc)))
                writes.append(ReplaceOne({"_id": doc["_id"]}, {**doc, "pages": pack(doc["pages"])}, upsert=True))
                done.append((key, doc, doc["_id"]))
            for doc_id, before in old.items():
                touched.add((before["start_ts"], key[0]))
                changes.append((before["start_ts"], key[0], doc_id, None))
                gone.append(doc_id)
                done.append((key, None, doc_id))
        if gone:
            writes.append(DeleteMany({"_id": {"$in": gone}}))
        if writes and before_write is not None:
            before_write(touched)
        if writes:
            db[STATS_VISITS].bulk_write(writes, ordered=True)
            written += sum(isinstance(w, ReplaceOne) for w in writes)
        if index is not None:
            for key, doc, doc_id in done:
                if doc is None:
                    index.deleted(key, doc_id)
                else:
                    index.wrote(key, doc)
    return touched, written, changes


def visits_starting(db: Any, start_ts: float, end_ts: float) -> Iterator[dict[str, Any]]:
    """The visits that started in [start_ts, end_ts), projected to what the visit buckets need."""
    # No projection: nx-27017 reads the whole document anyway, and answers a projected find slower.
    return db[STATS_VISITS].find({"start_ts": {"$gte": start_ts, "$lt": end_ts}})


def drop_visits_starting(db: Any, start_ts: float, end_ts: float) -> dict[float, float]:
    """Delete the visits that started in [start_ts, end_ts) (a refresh re-derives them); {start: end} of each."""
    found = {d["_id"]: (d["start_ts"], d["end_ts"]) for d in
             db[STATS_VISITS].find({"start_ts": {"$gte": start_ts, "$lt": end_ts}}, {"start_ts": 1, "end_ts": 1})}
    if found:
        db[STATS_VISITS].delete_many({"_id": {"$in": list(found)}})
    return dict(found.values())
