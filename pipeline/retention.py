"""Retention of raw events (EVENTLOG_RETENTION_DAYS): website_logs, exit_link_logs, dead_letters.

Rollups (``stats_*``) are aggregates and are kept whatever this says; only the raw
collections expire, and with them the rollups' per-visit documents (``stats_visits``:
they list each visit's page views and user, so they are raw data in all but name).
Plain Python + pymongo. Two mechanisms, so that it works everywhere:

- a TTL index on ``datetime`` where the server has them (MongoDB 5.1+ turns the existing
  ``datetime`` index into one with ``collMod``; nx-27017 0.8.1 answers ``collMod`` with ok
  and changes nothing, so the index is rebuilt with the option, and it then purges
  expired documents on the next operation on the collection). It expires a day later
  than the cutoff below, so it only ever removes what the batched delete would have
  removed already: it is the backstop, not the rule;
- :func:`expire`, run by beat (``eventlog.rollup.retention``), deleting whole UTC days
  before the cutoff in bounded batches (``_id $in``), which every server runs.

Why whole days, and why page views and exit links are deleted only once the rollups have
counted them: a rollup recomputes a day (or an hour) from the raw events it finds. A day
cut in half, or a day expired before the rollups saw it, would lose figures the moment
anything recomputed it. Events that arrive for an expired day are not stored at all
(:func:`expired_before`, applied by enrichment), so nothing can make a rollup recompute a
day whose raw events are gone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import OperationFailure

from pipeline.rollups import STATS_VISITS, STATS_WATERMARKS
from pipeline.store import DEAD_LETTERS, EXIT_LINK_LOGS, WEBSITE_LOGS

log = logging.getLogger(__name__)

RAW_COLLECTIONS = (WEBSITE_LOGS, EXIT_LINK_LOGS, DEAD_LETTERS)
COUNTED_BY_ROLLUPS = (WEBSITE_LOGS, EXIT_LINK_LOGS)
BATCH = 1000  # documents per delete
MAX_BATCHES = 200  # per collection and run: a run stays short; the next one goes on
DAY = 86400
TTL_MARGIN_DAYS = 1  # the TTL index expires this much later than the batched delete
MAX_TTL_SECONDS = 2**31 - 1  # the largest expireAfterSeconds MongoDB accepts


def expired_before(days: int, now: datetime | None = None) -> datetime | None:
    """The cutoff: the start of the UTC day ``days`` days before today; None when ``days`` is 0.

    Everything strictly before it has expired, so a day is either whole or gone.
    """
    if days <= 0:
        return None
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    start = today - timedelta(days=days)
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def counted_filters(db: Any, name: str) -> list[dict[str, Any]] | None:
    """Filters (their union) of the documents of ``name`` the rollups have counted, from their
    watermark: ``updated_ts`` (epoch seconds) or ``stored_at`` at or before it, or none at all
    (imported documents, which the rollups' first run saw). None before the rollups' first run.
    """
    mark = db[STATS_WATERMARKS].find_one({"_id": name}) or {}
    for field_name in ("updated_ts", "stored_at"):
        value = mark.get(field_name)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if isinstance(value, int | float | datetime) and not isinstance(value, bool):
            # Two filters, not one $or: nx-27017 mis-parenthesises a top-level $or beside other fields.
            return [{field_name: {"$lte": value}}, {field_name: None}]
    return None


def _delete_batches(coll: Any, query: dict[str, Any], batch: int, max_batches: int) -> int:
    deleted = 0
    for _ in range(max_batches):
        ids = [doc["_id"] for doc in coll.find(query, {"_id": 1}).limit(batch)]
        if not ids:
            break
        deleted += coll.delete_many({"_id": {"$in": ids}}).deleted_count
    return deleted


def expire(db: Any, days: int, now: datetime | None = None, batch: int = BATCH,
           max_batches: int = MAX_BATCHES) -> dict[str, Any]:
    """Delete raw documents of the days before the cutoff, in bounded batches.

    Page views and exit links go only once the rollups have counted them
    (:func:`counted_filters`); before the rollups' first run they are all kept. Dead letters go by
    the time they were written. Returns ``{"cutoff", "deleted": {collection: n}, "waiting"}``.
    """
    cutoff = expired_before(days, now)
    if cutoff is None:
        return {"cutoff": None, "deleted": {}, "waiting": None}
    deleted: dict[str, int] = {}
    waiting = []
    for name in RAW_COLLECTIONS:
        old = {"datetime": {"$lt": cutoff}}
        filters = counted_filters(db, name) if name in COUNTED_BY_ROLLUPS else [{}]
        if filters is None:
            waiting.append(name)
        deleted[name] = sum(_delete_batches(db[name], {**old, **f}, batch, max_batches) for f in filters or [])
    if WEBSITE_LOGS not in waiting:
        # The rollups' per-visit documents hold page views and user names: they go with the
        # raw events (a day later: no visit of a kept page view can reach back that far).
        # The visit figures themselves are in the buckets, which stay.
        ended = {"end_ts": {"$lt": cutoff.timestamp() - DAY}}
        deleted[STATS_VISITS] = _delete_batches(db[STATS_VISITS], ended, batch, max_batches)
    note = f"the rollups have not counted {' and '.join(waiting)} yet: kept" if waiting else None
    return {"cutoff": cutoff, "deleted": deleted, "waiting": note}


def _datetime_index(coll: Any) -> dict[str, Any] | None:
    for index in coll.list_indexes():
        if list(index["key"].items()) == [("datetime", 1)]:
            return dict(index)
    return None


def ensure_ttl(db: Any, days: int) -> dict[str, str]:
    """Make each raw collection's ``datetime`` index match ``days``; what happened, per collection.

    ``days`` > 0: the index gets ``expireAfterSeconds`` (days + TTL_MARGIN_DAYS) through
    collMod; a server that refuses (MongoDB before 5.1) is left to the batched delete.
    0: a TTL set earlier is removed (the index is rebuilt without it). Page views and exit
    links get theirs only once the rollups have run.
    """
    wanted = min((days + TTL_MARGIN_DAYS) * DAY, MAX_TTL_SECONDS) if days > 0 else None
    done: dict[str, str] = {}
    for name in RAW_COLLECTIONS:
        coll = db[name]
        if wanted is not None and name in COUNTED_BY_ROLLUPS and counted_filters(db, name) is None:
            # A TTL index ignores the rollups: it waits for their first run (as expire does).
            done[name] = "waiting for the rollups' first run"
            continue
        coll.create_index([("datetime", 1)])  # exists normally (EventStore.ensure_indexes); idempotent
        index = _datetime_index(coll) or {}
        current = index.get("expireAfterSeconds")
        if current == wanted:
            done[name] = "unchanged"
            continue
        try:
            done[name] = _set_ttl(db, coll, index, wanted)
        except OperationFailure as exc:
            log.info("eventlog retention: %s keeps no TTL index (%s); the beat task expires it", name, exc)
            done[name] = "no ttl (batched deletes only)"
    return done


def _set_ttl(db: Any, coll: Any, index: dict[str, Any], wanted: int | None) -> str:
    """collMod first (MongoDB 5.1+: in place, no rebuild); where that changes nothing
    (nx-27017 answers ok and ignores it; older MongoDB refuses) the index is rebuilt."""
    if wanted is not None:
        try:
            db.command("collMod", coll.name, index={"keyPattern": {"datetime": 1}, "expireAfterSeconds": wanted})
        except OperationFailure:
            pass
        if (_datetime_index(coll) or {}).get("expireAfterSeconds") == wanted:
            return f"ttl {wanted} s"
    if index.get("name"):
        coll.drop_index(index["name"])
    if wanted is None:
        coll.create_index([("datetime", 1)])
        return "ttl removed"
    coll.create_index([("datetime", 1)], expireAfterSeconds=wanted)
    return f"ttl {wanted} s (index rebuilt)"
