"""What changed since the last run: the lease, the watermarks, the selection of events.

The watermarks are the server's own data (the newest ``stored_at`` and
``updated_ts`` seen), never this host's clock. Each selection reaches back
``overlap`` before them, for batches a store worker stamped just before the last
run but committed just after it; events selected twice cost a little and change
nothing (buckets and visits are recomputed, not incremented).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pymongo
from pymongo.errors import DuplicateKeyError

from .buckets import EVENT_FIELDS
from .common import EXIT_LINK_LOGS, STATS_WATERMARKS, WEBSITE_LOGS, as_utc, is_number
from .packing import pack, unpack
from .visits import VISIT_FIELDS

LOCK_TTL = 600.0  # seconds; renewed between steps
# A store worker stamps updated_ts just before its bulk write (a retry stamps again), so a
# batch commits at most seconds after its stamp; a minute covers that with a wide margin
# and keeps the re-read events of every run to a minute of traffic.
SAFETY_OVERLAP = timedelta(seconds=60)
# What a run reads of a page view. None (the whole document): nx-27017 answers a projected find
# about twice as slowly as a plain one (measured: 17,000 documents in 3.1 s against 1.6 s).
SELECT_FIELDS = None
USED_FIELDS = tuple(sorted({*EVENT_FIELDS, *VISIT_FIELDS, "updated_ts"}))


def acquire_lock(db: Any, owner: str, ttl: float = LOCK_TTL) -> bool:
    """Take (or renew) the rollup lease; False when another live run holds it.

    Renew: our own lease. Take: a lease that expired, or none (the upsert then
    creates it; if another run holds a live one the upsert collides with its _id).
    No top-level $or (nx-27017 mis-parenthesises it beside other fields); expiry
    is epoch seconds (nx-27017 stores dates written by $set as strings).
    """
    now = time.time()
    coll = db[STATS_WATERMARKS]
    if coll.update_one({"_id": "lock", "owner": owner}, {"$set": {"expires": now + ttl}}).matched_count:
        return True
    try:
        coll.update_one({"_id": "lock", "expires": {"$lt": now}}, {"$set": {"owner": owner, "expires": now + ttl}},
                        upsert=True)
        return True
    except DuplicateKeyError:
        return False


def release_lock(db: Any, owner: str) -> None:
    db[STATS_WATERMARKS].delete_one({"_id": "lock", "owner": owner})


def watermark(db: Any, name: str) -> dict[str, Any] | None:
    doc = db[STATS_WATERMARKS].find_one({"_id": name})
    if doc is None:
        return None
    return {k: as_utc(v) if isinstance(v, datetime) else v for k, v in doc.items()}


def write_watermarks(db: Any, marks: dict[str, dict[str, Any]], now: datetime) -> None:
    for name, mark in marks.items():
        # whole-document replace (with _id): dates stay dates on every server
        db[STATS_WATERMARKS].replace_one({"_id": name}, {"_id": name, **mark, "updated_at": now}, upsert=True)


def newest(coll: Any, field_name: str, newest_first: bool = True) -> Any:
    doc = coll.find_one({field_name: {"$ne": None}}, {field_name: 1},
                        sort=[(field_name, pymongo.DESCENDING if newest_first else pymongo.ASCENDING)])
    value = doc.get(field_name) if doc else None
    return as_utc(value) if isinstance(value, datetime) else value


def _later(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)


CHUNK = 20_000  # page views per step of a run (memory, and the lease is renewed between steps)
SEEN_MAX = 20_000  # page views near the watermark it keeps as counted (Seen): 40 bytes each


def marks_of(db: Any) -> dict[str, dict[str, Any]]:
    return {name: watermark(db, name) or {} for name in (WEBSITE_LOGS, EXIT_LINK_LOGS)}


def page_view_chunks(db: Any, since: float | None, chunk: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Page views with ``updated_ts`` > since (all when None), oldest change first, in chunks.

    ``updated_ts`` (epoch seconds, set by the store on insert and on every change) is
    numeric on purpose: nx-27017 answers a numeric range from its index but scans the
    whole collection for a date range. A chunk ends before the last ``updated_ts`` it
    reached, so a batch stamped with one value is never split; the next starts there.
    """
    logs = db[WEBSITE_LOGS]
    chunk = chunk or CHUNK  # read at the call (tests make it small)
    low, inclusive = (since, False) if since is not None else (None, True)
    while True:
        bound = {} if low is None else {"updated_ts": {"$gte" if inclusive else "$gt": low}}
        query = bound or {"updated_ts": {"$ne": None}}
        docs = list(logs.find(query, SELECT_FIELDS).sort("updated_ts", pymongo.ASCENDING).limit(chunk))
        if len(docs) < chunk:
            if docs:
                yield docs
            return
        last = docs[-1]["updated_ts"]
        head = [d for d in docs if d["updated_ts"] != last]
        if not head:  # one stamp holds more than a chunk: take all of it
            head = list(logs.find({"updated_ts": last}, SELECT_FIELDS))
            low, inclusive = last, False
        else:
            low, inclusive = last, True
        yield head


_END = object()


def prefetched(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """The chunks of ``chunks``, the next one read (in a thread) while the caller works on this one.

    A run's time is the store's reading plus this process's counting; on a first run over
    every stored event the two are of the same size, and each can use a core of its own.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventlog-rollup-read") as pool:
        ahead = pool.submit(next, chunks, _END)
        while (chunk := ahead.result()) is not _END:
            ahead = pool.submit(next, chunks, _END)
            yield chunk


class Seen:
    """The page views counted near the watermark, so that the next run does not count them again.

    Each run re-selects ``overlap`` before the watermark (batches committed just after their
    stamp). Without this, a busy site's last minute was read, looked up and compared again by
    every run: at 300,000 events a day, 450 old events beside 1,000 new ones. The watermark
    keeps the ids and stamps of the page views within ``overlap`` of its newest stamp; one the
    next run finds with the same stamp has not changed since it was counted (the store stamps
    every change) and is skipped. Kept with the watermark, written after everything else: a run
    that dies half way leaves the old list, and its events are counted again.
    """

    def __init__(self, mark: dict[str, Any], overlap: timedelta) -> None:
        self.counted: dict[str, float] = unpack(mark.get("seen")) or {}
        self.window = overlap.total_seconds()
        self.near: dict[str, float] = {}

    def unseen(self, chunk: list[dict[str, Any]], newest: float | None) -> list[dict[str, Any]]:
        """The page views of ``chunk`` not counted already; remembers the chunk's stamps."""
        fresh = [d for d in chunk if self.counted.get(str(d["_id"])) != d.get("updated_ts")]
        self.near.update((str(d["_id"]), d["updated_ts"]) for d in chunk if is_number(d.get("updated_ts")))
        if newest is not None and len(self.near) > 2 * SEEN_MAX:  # a first run: keep the last window only
            self.near = self._window(newest)
        return fresh

    def _window(self, newest: float) -> dict[str, float]:
        return {doc_id: ts for doc_id, ts in self.near.items() if ts >= newest - self.window}

    def mark(self, newest: float | None) -> str | None:
        """The packed list for the watermark (None: too many to keep, the next run counts them again)."""
        near = self._window(newest) if newest is not None else {}
        return pack(near) if len(near) <= SEEN_MAX else None


def unstamped_chunks(db: Any, chunk: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Page views without ``updated_ts`` (imported, or written by something other than the store),
    in chunks: the first run reads them once; later ones leave them to the refresh task."""
    chunk = chunk or CHUNK
    batch: list[dict[str, Any]] = []
    for doc in db[WEBSITE_LOGS].find({"updated_ts": None}, SELECT_FIELDS, batch_size=chunk):
        batch.append(doc)
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def newest_ts(docs: list[dict[str, Any]], current: float | None) -> float | None:
    values = [d["updated_ts"] for d in docs if is_number(d.get("updated_ts"))]
    return _later(current, max(values)) if values else current


def exit_links_since(db: Any, mark: dict[str, Any], overlap: timedelta) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Exit links new since the mark (by datetime and by stored_at: they have no updated_ts), and the new mark."""
    exits = db[EXIT_LINK_LOGS]
    newest_dt, newest_st = mark.get("datetime"), mark.get("stored_at")
    queries = []
    if newest_dt is not None:
        queries.append({"datetime": {"$gt": newest_dt - overlap}})
    if newest_st is not None or newest_dt is not None:  # a replay: datetime old, stored_at new
        queries.append({"stored_at": {"$gt": (newest_st or newest_dt) - overlap}})
    if not queries:  # none seen before: every exit link is new
        queries.append({})
    found: dict[Any, dict[str, Any]] = {}
    for query in queries:
        for doc in exits.find(query, {"datetime": 1, "stored_at": 1, "exit_link": 1, "site": 1}):
            found[doc["_id"]] = doc
            if isinstance(doc.get("datetime"), datetime):
                newest_dt = _later(newest_dt, as_utc(doc["datetime"]))
            if isinstance(doc.get("stored_at"), datetime):
                newest_st = _later(newest_st, as_utc(doc["stored_at"]))
    return list(found.values()), {"datetime": newest_dt, "stored_at": newest_st}
