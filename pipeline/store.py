"""MongoDB access: idempotent bulk inserts, indexes, the validator, dead letters."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pymongo
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from pipeline import progress
from pipeline.events import LOCATION_FIELDS, TRACKER_FIELDS, dead_letter

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
WEBSITE_LOGS = "website_logs"
EXIT_LINK_LOGS = "exit_link_logs"
TUTORIAL_PROGRESS_LOGS = "tutorial_progress_logs"
DEAD_LETTERS = "dead_letters"
VALIDATOR_FILE = "website_logs.validator.json"  # package data of pipeline

# Fields of a page view that a middleware record never overwrites.
TRACKER_OWNED = (*TRACKER_FIELDS, "visit_duration", "sources")

# Only what the rollups, the health check and per-user queries need: every index
# costs on each insert (nx-27017 inserts ~40 % slower with six than with none).
WEBSITE_LOGS_INDEXES: list[tuple[list[tuple[str, int]], dict[str, Any]]] = [
    ([("datetime", pymongo.ASCENDING)], {}),
    ([("event_name", pymongo.ASCENDING), ("datetime", pymongo.ASCENDING)], {}),
    ([("visited_by", pymongo.ASCENDING), ("datetime", pymongo.ASCENDING)], {}),
    ([("stored_at", pymongo.ASCENDING)], {}),
    ([("updated_ts", pymongo.ASCENDING)], {}),
]


@dataclass
class WriteResult:
    inserted: int = 0
    duplicates: int = 0
    merged: int = 0
    dead_lettered: int = 0  # writes the store refused, kept in dead_letters instead
    duplicate_ids: list[Any] = field(default_factory=list)

    def add(self, other: WriteResult) -> WriteResult:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.merged += other.merged
        self.dead_lettered += other.dead_lettered
        return self


def connect(url: str, timeout_ms: int = 3000) -> pymongo.MongoClient:
    """A client that fails fast when the server is away (callers retry)."""
    return pymongo.MongoClient(
        url,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 10, 30_000),
        tz_aware=True,
    )


_process_clients: dict[tuple[int, str], pymongo.MongoClient] = {}
_process_clients_lock = threading.Lock()


def process_client(url: str, timeout_ms: int = 3000) -> pymongo.MongoClient:
    """The client of this process for ``url``, opened on first use.

    One per process and URL: a pymongo client must not cross a fork (gunicorn's
    prefork workers each open their own) and is safe to share between threads.
    """
    key = (os.getpid(), url)
    client = _process_clients.get(key)
    if client is None:
        with _process_clients_lock:
            client = _process_clients.get(key) or _process_clients.setdefault(key, connect(url, timeout_ms))
    return client


def insert_idempotent(collection: Any, docs: list[dict[str, Any]]) -> WriteResult:
    """One unordered bulk insert; documents whose _id exists count as already stored.

    Any error other than a duplicate _id is raised, so the caller does not
    acknowledge the batch. ``WriteResult.duplicate_ids`` lists the ids that existed.
    """
    if not docs:
        return WriteResult()
    try:
        result = collection.insert_many(docs, ordered=False)
        return WriteResult(inserted=len(result.inserted_ids))
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if other or exc.details.get("writeConcernErrors"):
            raise
        duplicate_ids = [docs[e["index"]]["_id"] for e in errors]
        # A duplicate key may come from another unique index (a site's own, say): only a
        # document whose _id is stored is "already stored"; anything else was refused.
        # Servers differ in how they name the index (nx-27017 gives no keyPattern), so ask.
        existing = {d["_id"] for d in collection.find({"_id": {"$in": duplicate_ids}}, {"_id": 1})}
        if len(existing) < len(set(duplicate_ids)):
            raise
        return WriteResult(inserted=exc.details.get("nInserted", 0), duplicates=len(errors),
                           duplicate_ids=duplicate_ids)


def with_retry(
    operation: Callable[[], Any],
    describe: str,
    first_delay: float = 0.5,
    max_delay: float = 30.0,
    give_up_after: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Run ``operation`` until it succeeds, backing off while MongoDB is unreachable.

    Only connection-type failures are retried; ``give_up_after`` (seconds) bounds
    the wait, after which the last error is raised.
    """
    delay = first_delay
    started = time.monotonic()
    while True:
        try:
            return operation()
        except ConnectionFailure as exc:
            waited = time.monotonic() - started
            if give_up_after is not None and waited >= give_up_after:
                raise
            log.warning("eventlog: %s failed (%s); retrying in %.1fs", describe, exc, delay)
            sleep(delay)
            delay = min(delay * 2, max_delay)


class EventStore:
    """The collections eventlog writes, behind one client."""

    def __init__(self, url: str, db: str) -> None:
        self.client = connect(url)
        self.db = self.client[db]
        self.website_logs = self.db[WEBSITE_LOGS]
        self.exit_link_logs = self.db[EXIT_LINK_LOGS]
        self.tutorial_progress = self.db[TUTORIAL_PROGRESS_LOGS]
        self.dead_letters = self.db[DEAD_LETTERS]

    def ensure_indexes(self) -> None:
        """Create the indexes (idempotent: existing ones are left alone)."""
        for keys, options in WEBSITE_LOGS_INDEXES:
            self.website_logs.create_index(keys, **options)
        self.dead_letters.create_index([("datetime", pymongo.ASCENDING)])
        self.exit_link_logs.create_index([("datetime", pymongo.ASCENDING)])
        self.exit_link_logs.create_index([("stored_at", pymongo.ASCENDING)])
        progress.ensure_indexes(self.tutorial_progress)

    def apply_validator(self, schema: dict[str, Any]) -> bool:
        """Attach the $jsonSchema validator to website_logs where the server supports it.

        Returns False (and logs why) on servers without validators; the pipeline
        validates every event itself, so nothing depends on this.
        """
        try:
            if WEBSITE_LOGS not in self.db.list_collection_names():
                self.db.create_collection(WEBSITE_LOGS)
            self.db.command("collMod", WEBSITE_LOGS, validator=schema, validationLevel="moderate")
            return True
        except OperationFailure as exc:
            log.info("eventlog: server does not apply validators (%s); pipeline validation only", exc)
            return False

    def store_or_dead_letter(self, writes: list[dict[str, Any]],
                            retry: Callable[[Callable[[], Any], str], Any] | None = None) -> WriteResult:
        """Store every write that can be stored; dead-letter each one the store refuses.

        Connection failures are retried (``retry``, default with_retry: until MongoDB
        answers). Any other error (a document the server's validator or a unique index
        rejects, a bug in a write) splits the batch in halves, down to the single write
        that fails, which goes to dead_letters (stage ``store``, the reason, the write).
        Writes are idempotent, so the halves that had been written already are harmless
        to write again. Returns only when each write is stored or dead-lettered.
        """
        retry = retry or with_retry
        if not writes:
            return WriteResult()
        try:
            return retry(lambda: self.store_writes(writes), "bulk write")
        except Exception as exc:  # noqa: BLE001 - every refusal ends stored or dead-lettered
            if len(writes) == 1:
                log.error("eventlog: the store refused a write; dead-lettered (%s)", exc)
                letter = dead_letter(writes[0], f"{type(exc).__name__}: {exc}"[:2000], stage="store")
                letter["event_id"] = writes[0].get("_id")  # the spool's check looks for it (pipeline.reconcile)
                retry(lambda: self.store_dead_letters([letter]), "dead-letter write")
                return WriteResult(dead_lettered=1)
            log.warning("eventlog: bulk write of %d failed (%s: %s); splitting it",
                        len(writes), type(exc).__name__, str(exc)[:300])
        middle = len(writes) // 2
        return self.store_or_dead_letter(writes[:middle], retry).add(
            self.store_or_dead_letter(writes[middle:], retry))

    def store_writes(self, writes: list[dict[str, Any]]) -> WriteResult:
        """Perform the writes enrichment produced (see pipeline.enrich), idempotently."""
        stored_at = datetime.now(UTC)
        by_kind: dict[str, list[dict[str, Any]]] = {
            "page_view": [], "page_view_merge": [], "exit_link": [], "progress_report": [], "progress_mark": []}
        for write in writes:
            write = dict(write)
            by_kind[write.pop("_write", "page_view")].append(write)
        result = self.store_page_views(by_kind["page_view"], stored_at)
        result.add(self.merge_page_views(by_kind["page_view_merge"], stored_at))
        result.add(insert_idempotent(self.exit_link_logs, [dict(d, stored_at=stored_at) for d in by_kind["exit_link"]]))
        # One learner's reports are few and each is a handful of atomic updates;
        # applied in arrival order (the rules themselves tolerate any order).
        for write in by_kind["progress_report"]:
            progress.apply_report_to_collection(self.tutorial_progress, write["event"])
        for write in by_kind["progress_mark"]:
            progress.apply_mark_to_collection(self.tutorial_progress, write["event"])
        result.merged += len(by_kind["progress_report"]) + len(by_kind["progress_mark"])
        return result

    def store_page_views(self, docs: list[dict[str, Any]], stored_at: datetime | None = None) -> WriteResult:
        stored_at = stored_at or datetime.now(UTC)
        for doc in docs:
            doc.setdefault("stored_at", stored_at)
            # When the document last changed, for incremental rollups. Epoch seconds:
            # nx-27017 turns a date written by $set into a string, a number it keeps.
            doc.setdefault("updated_ts", doc["stored_at"].timestamp())
        result = insert_idempotent(self.website_logs, docs)
        if result.duplicate_ids:
            # Either a redelivery (the update changes nothing) or the tracker's
            # record of the same page view arrived first: add the server's fields.
            wanted = set(result.duplicate_ids)
            self._complete_tracker_records([d for d in docs if d["_id"] in wanted])
        return result

    def _complete_tracker_records(self, docs: list[dict[str, Any]]) -> None:
        operations = []
        for doc in docs:
            # datetime stays the tracker's: nx-27017 stores a date written by $set as a string.
            server = {k: v for k, v in doc.items()
                      if k not in TRACKER_OWNED and k not in LOCATION_FIELDS
                      and k not in ("_id", "stored_at", "datetime")}
            location = {k: doc[k] for k in LOCATION_FIELDS if k in doc}
            operations.append(UpdateOne({"_id": doc["_id"]},
                                        {"$set": dict(server, updated_ts=doc["updated_ts"]),
                                         "$addToSet": {"sources": doc["source"]}}))
            # A position the browser reported beats the GeoIP guess.
            operations.append(UpdateOne({"_id": doc["_id"], "location_source": {"$ne": "browser"}},
                                        {"$set": location}))
        self.website_logs.bulk_write(operations, ordered=False)

    def merge_page_views(self, merges: list[dict[str, Any]], stored_at: datetime | None = None) -> WriteResult:
        """Tracker details into page views: upserts, so the first record to arrive creates
        the document and the others add to it, in any order, any number of times."""
        if not merges:
            return WriteResult()
        stored_at = stored_at or datetime.now(UTC)
        # Later than the stamp of the page views this batch inserted (which it may merge into): a
        # rollup run that counted such a page view between the two writes knows it by its stamp
        # (pipeline.rollups.selection.Seen) and must see the merge as a change.
        stamp = max(time.time(), stored_at.timestamp() + 1e-6)
        operations = [UpdateOne({"_id": m["_id"]}, _merge_update(m, stored_at, stamp), upsert=True) for m in merges]
        try:
            self.website_logs.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            # Two upserts of one new _id racing: the loser retries as a plain update.
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            self.website_logs.bulk_write([operations[e["index"]] for e in errors], ordered=False)
        return WriteResult(merged=len(merges))

    def store_dead_letters(self, docs: Iterable[dict[str, Any]]) -> WriteResult:
        return insert_idempotent(self.dead_letters, list(docs))

    def ping(self) -> bool:
        try:
            self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False


def _merge_update(merge: dict[str, Any], stored_at: datetime, stamp: float) -> dict[str, Any]:
    update: dict[str, Any] = {
        "$setOnInsert": dict(merge["set_on_insert"], stored_at=stored_at),  # a date: insert keeps it
        "$addToSet": {"sources": merge.get("source", "js")},
    }
    merge["set"] = dict(merge["set"], updated_ts=stamp)
    if merge["set"]:
        update["$set"] = merge["set"]
    if merge["max"]:
        update["$max"] = merge["max"]
    return update


def load_validator(path: str | Path | None = None) -> dict[str, Any]:
    """The website_logs $jsonSchema validator (JSON): by default the one shipped as package data
    (pipeline/website_logs.validator.json, read through importlib.resources so an installed
    wheel finds it too)."""
    if path is None:
        return json.loads((resources.files("pipeline") / VALIDATOR_FILE).read_text(encoding="utf-8"))
    return json.loads(Path(path).read_text(encoding="utf-8"))
