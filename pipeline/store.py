"""MongoDB access: idempotent bulk inserts, indexes, the validator, dead letters."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymongo
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
WEBSITE_LOGS = "website_logs"
DEAD_LETTERS = "dead_letters"

WEBSITE_LOGS_INDEXES: list[tuple[list[tuple[str, int]], dict[str, Any]]] = [
    ([("datetime", pymongo.ASCENDING)], {}),
    ([("event_name", pymongo.ASCENDING), ("datetime", pymongo.ASCENDING)], {}),
    ([("visited_by", pymongo.ASCENDING), ("datetime", pymongo.ASCENDING)], {}),
    ([("path_info", pymongo.ASCENDING)], {}),
    ([("stored_at", pymongo.ASCENDING)], {}),
    ([("country", pymongo.ASCENDING)], {}),
]


@dataclass
class WriteResult:
    inserted: int = 0
    duplicates: int = 0


def connect(url: str, timeout_ms: int = 3000) -> pymongo.MongoClient:
    """A client that fails fast when the server is away (callers retry)."""
    return pymongo.MongoClient(
        url,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 10, 30_000),
        tz_aware=True,
    )


def insert_idempotent(collection: Any, docs: list[dict[str, Any]]) -> WriteResult:
    """One unordered bulk insert; documents whose _id exists count as already stored.

    Any error other than a duplicate key is raised, so the caller does not
    acknowledge the batch.
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
        return WriteResult(inserted=exc.details.get("nInserted", 0), duplicates=len(errors))


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
        self.dead_letters = self.db[DEAD_LETTERS]

    def ensure_indexes(self) -> None:
        """Create the indexes (idempotent: existing ones are left alone)."""
        for keys, options in WEBSITE_LOGS_INDEXES:
            self.website_logs.create_index(keys, **options)
        self.dead_letters.create_index([("datetime", pymongo.ASCENDING)])

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

    def store_page_views(self, docs: list[dict[str, Any]]) -> WriteResult:
        stored_at = datetime.now(UTC)
        for doc in docs:
            doc.setdefault("stored_at", stored_at)
        return insert_idempotent(self.website_logs, docs)

    def store_dead_letters(self, docs: Iterable[dict[str, Any]]) -> WriteResult:
        return insert_idempotent(self.dead_letters, list(docs))

    def ping(self) -> bool:
        try:
            self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False


def load_validator(path: str | Path) -> dict[str, Any]:
    """The validator document kept in deploy/ (JSON)."""
    return json.loads(Path(path).read_text())
