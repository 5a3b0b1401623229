"""A MongoDB of a test module's own: the server at EVENTLOG_MONGO_URL (a fresh,
dropped-after database), else a private nx-27017 process."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymongo

from deploy.stack import free_port, nx_proc, wait_for_port
from pipeline.store import EventStore


@contextmanager
def private_database(data_dir: Path, prefix: str) -> Iterator[pymongo.database.Database]:
    external = os.environ.get("EVENTLOG_MONGO_URL")
    if external:
        client = pymongo.MongoClient(external, serverSelectionTimeoutMS=5000, tz_aware=True)
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        try:
            yield client[name]
        finally:
            client.drop_database(name)
            client.close()
        return
    port = free_port()
    proc = nx_proc(port, data_dir, data_dir / "stdout.log").start()
    try:
        wait_for_port("127.0.0.1", port, 30, "nx-27017")
        client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=5000, tz_aware=True)
        yield client["logs"]
        client.close()
    finally:
        proc.stop()


@contextmanager
def private_event_store(data_dir: Path, prefix: str) -> Iterator[EventStore]:
    """An EventStore on a private_database (the same server URL the fixtures give workers)."""
    with private_database(data_dir, prefix) as db:
        host, port = db.client.address
        store = EventStore(os.environ.get("EVENTLOG_MONGO_URL") or f"mongodb://{host}:{port}", db.name)
        try:
            yield store
        finally:
            store.client.close()


def emptied(db: Any, collections: Iterable[str] | None = None) -> Any:
    """``db`` with every document of ``collections`` (default: all) deleted, for the next test.

    Cleared, not replaced by a database of a new name: nx-27017 keeps every database of its
    file in one namespace."""
    for name in db.list_collection_names() if collections is None else collections:
        db[name].delete_many({})
    return db


def emptied_store(store: EventStore) -> EventStore:
    """The store with every collection emptied and its indexes in place."""
    emptied(store.db)
    store.ensure_indexes()
    return store


# What a rollup run stamps on the documents it writes (when, and which run): not figures.
RUN_STAMPS = ("computed_at", "updated_at", "run")


def figures_of(coll: Any, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A collection's documents without run stamps, in ``_id`` order: what two runs must agree on."""
    docs = ({k: v for k, v in doc.items() if k not in RUN_STAMPS} for doc in coll.find(query or {}))
    return sorted(docs, key=lambda d: str(d["_id"]))
