"""EventStore on a real server: what is refused is dead-lettered, never silently dropped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from pipeline.events import new_event_id
from pipeline.store import DEAD_LETTERS, WEBSITE_LOGS, EventStore, with_retry
from tests.helpers.mongo import private_event_store

UNIQUE_PATH = "test_unique_path_info"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    with private_event_store(tmp_path_factory.mktemp("nx-store"), "eventlog_store") as event_store:
        yield event_store


@pytest.fixture
def empty_store(store: EventStore) -> Iterator[EventStore]:
    for name in (WEBSITE_LOGS, DEAD_LETTERS, "exit_link_logs"):
        store.db[name].delete_many({})
    # A unique index of the test's own makes the server refuse one document of a batch.
    store.website_logs.create_index("path_info", unique=True, name=UNIQUE_PATH)
    yield store
    store.website_logs.drop_index(UNIQUE_PATH)


def page_view(path: str) -> dict[str, Any]:
    return {"_id": new_event_id(), "_write": "page_view", "path_info": path, "source": "middleware",
            "datetime": datetime.now(UTC), "visited_by": "AnonymousUser"}


def test_a_refused_document_is_dead_lettered_and_the_rest_stored(empty_store: EventStore) -> None:
    writes = [page_view(f"/p/{i}") for i in range(9)] + [page_view("/p/3")]  # the last clashes
    result = empty_store.store_or_dead_letter(writes)
    assert result.dead_lettered == 1
    stored = {d["_id"] for d in empty_store.website_logs.find()}
    assert stored == {w["_id"] for w in writes[:9]}
    letters = list(empty_store.dead_letters.find())
    assert len(letters) == 1
    assert letters[0]["stage"] == "store"
    assert "BulkWriteError" in letters[0]["reason"]
    assert json.loads(letters[0]["raw"])["_id"] == writes[-1]["_id"]


def test_a_clash_on_another_unique_index_is_not_taken_for_a_redelivery(empty_store: EventStore) -> None:
    first = page_view("/same/")
    empty_store.store_or_dead_letter([first])
    clash = page_view("/same/")  # a new _id: not "already stored"
    result = empty_store.store_or_dead_letter([clash])
    assert (result.inserted, result.duplicates, result.dead_lettered) == (0, 0, 1)
    assert empty_store.dead_letters.count_documents({}) == 1


def test_a_redelivered_batch_is_stored_once_without_dead_letters(empty_store: EventStore) -> None:
    writes = [page_view(f"/r/{i}") for i in range(5)]
    empty_store.store_or_dead_letter(writes)
    again = empty_store.store_or_dead_letter(writes)
    assert (again.inserted, again.duplicates, again.dead_lettered) == (0, 5, 0)
    assert empty_store.website_logs.count_documents({}) == 5
    assert empty_store.dead_letters.count_documents({}) == 0


def test_a_bug_in_one_write_is_dead_lettered_alone(empty_store: EventStore) -> None:
    writes = [page_view(f"/b/{i}") for i in range(6)]
    writes[4]["_write"] = "no_such_kind"  # store_writes raises KeyError for it
    result = empty_store.store_or_dead_letter(writes)
    assert result.dead_lettered == 1
    assert empty_store.website_logs.count_documents({}) == 5
    assert "KeyError" in empty_store.dead_letters.find_one()["reason"]


def test_connection_failures_are_retried_not_dead_lettered(empty_store: EventStore) -> None:
    failures = iter([AutoReconnect("down"), AutoReconnect("still down")])
    real = empty_store.store_writes

    def flaky(writes: list[dict[str, Any]]) -> Any:
        failure = next(failures, None)
        if failure:
            raise failure
        return real(writes)

    empty_store.store_writes = flaky  # type: ignore[method-assign]
    try:
        result = empty_store.store_or_dead_letter(
            [page_view("/c/1")], retry=lambda op, what: with_retry(op, what, sleep=lambda _s: None))
    finally:
        del empty_store.store_writes
    assert (result.inserted, result.dead_lettered) == (1, 0)
    assert empty_store.dead_letters.count_documents({}) == 0


def test_a_merge_in_the_batch_of_its_page_view_is_stamped_later(empty_store: EventStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A rollup run may count the page view between the batch's two writes; it knows what it
    # counted by _id and updated_ts (pipeline.rollups.selection.Seen), so the merge must move the stamp.
    inserted: list[float] = []
    insert = empty_store.store_page_views

    def store_page_views(docs: list[dict[str, Any]], stored_at: datetime | None = None) -> Any:
        result = insert(docs, stored_at)
        inserted.extend(d["updated_ts"] for d in docs)
        return result

    monkeypatch.setattr(empty_store, "store_page_views", store_page_views)
    view = page_view("/stamped/")
    merge = {"_write": "page_view_merge", "_id": view["_id"], "set": {"page_title": "T"},
             "max": {"visit_duration": 4.0}, "set_on_insert": {"path_info": "/stamped/"}, "source": "js"}
    empty_store.store_writes([view, merge])
    doc = empty_store.website_logs.find_one({"_id": view["_id"]})
    assert inserted and doc["updated_ts"] > inserted[0] and doc["visit_duration"] == 4.0
