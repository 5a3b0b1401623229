"""pipeline.erasure on a real nx-27017 (or the MongoDB at EVENTLOG_MONGO_URL) with the real
rollups: one learner's export, their erasure, and rollups that end as if they never came."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline import erasure, rollups
from pipeline.events import dead_letter
from pipeline.store import DEAD_LETTERS, EXIT_LINK_LOGS, TUTORIAL_PROGRESS_LOGS, WEBSITE_LOGS, EventStore
from tests.helpers.mongo import emptied_store, figures_of, private_event_store

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
ALICE_BROWSER, BOB_BROWSER = "a" * 32, "b" * 32


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    with private_event_store(tmp_path_factory.mktemp("nx-erasure"), "eventlog_erasure") as store:
        yield store


@pytest.fixture
def store(server: EventStore) -> EventStore:
    return emptied_store(server)


def view(back: int, minute: int, user: str, visitor: str, path: str = "/", **extra: Any) -> dict[str, Any]:
    when = (NOW - timedelta(days=back)).replace(hour=9, minute=minute, second=0, microsecond=0)
    # Ids fixed by what the page view is: the two loads below must give the same rollup documents.
    page_view_id = hashlib.md5(f"{back}|{minute}|{user}|{visitor}|{path}".encode()).hexdigest()
    return {"_id": page_view_id, "path_info": path, "event_name": "event.home", "visited_by": user,
            "visitor_id": visitor, "datetime": when, "ip_address": "81.2.69.0", "is_bot": False,
            "first_time_visit": minute == 0, "source": "middleware", "sources": ["middleware"], "country": "GB",
            "browser_family": "Firefox", "stored_at": when + timedelta(seconds=1), **extra}


def alice_views() -> list[dict[str, Any]]:
    # Anonymous first, in her browser, then logged in; on two days.
    return [view(3, 0, "AnonymousUser", ALICE_BROWSER), view(3, 5, "alice", ALICE_BROWSER, "/watch/x/"),
            view(1, 0, "alice", ALICE_BROWSER)]


def bob_views() -> list[dict[str, Any]]:
    return [view(3, 2, "bob", BOB_BROWSER), view(3, 30, "AnonymousUser", BOB_BROWSER),
            view(1, 1, "bob", BOB_BROWSER, "/watch/x/")]


def exits(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"_id": "e" + v["_id"][1:], "exit_link": "https://example.org/", "path_info": v["path_info"],
             "page_view_id": v["_id"], "datetime": v["datetime"], "stored_at": v["stored_at"],
             "visited_by": v["visited_by"], "visitor_id": v["visitor_id"]} for v in views[:2]]


def progress(user: str) -> dict[str, Any]:
    return {"username": user, "foss": "Python", "language": "English", "tutorial": "Loops", "total_minutes": 4,
            "minutes_watched": [0, 1, 2, 3], "visits": 1, "visit_ids": [], "completed": True}


def letters(user: str, visitor: str) -> list[dict[str, Any]]:
    line = json.dumps({"event_id": uuid.uuid4().hex, "path_info": "relative", "visited_by": user,
                       "visitor_id": visitor})
    write = {"_write": "page_view", "_id": uuid.uuid4().hex, "visited_by": "AnonymousUser", "visitor_id": visitor}
    torn = {"_spool_corrupt": f'{{"visited_by": "{user}", "path_in'}
    return [dead_letter(line, "path_info: must start with '/'", "enrich"), dead_letter(write, "refused", "store"),
            dead_letter(torn, "torn", "enrich")]


def load(store: EventStore, who: set[str]) -> None:
    views = (alice_views() if "alice" in who else []) + (bob_views() if "bob" in who else [])
    store.website_logs.insert_many(views)
    store.exit_link_logs.insert_many(exits([v for v in views if v["visitor_id"] == ALICE_BROWSER])
                                     + exits([v for v in views if v["visitor_id"] == BOB_BROWSER]))
    store.tutorial_progress.insert_many([progress(u) for u in sorted(who)])
    store.dead_letters.insert_many([d for u, v in (("alice", ALICE_BROWSER), ("bob", BOB_BROWSER)) if u in who
                                    for d in letters(u, v)])


def snapshot(db: Any) -> dict[str, list[dict[str, Any]]]:
    """The rollup documents, without run timestamps."""
    taken = {}
    for name in sorted(db.list_collection_names()):
        if name.startswith("stats_") and name != rollups.STATS_WATERMARKS:
            taken[name] = figures_of(db[name])
    return taken


def counts(db: Any) -> dict[str, int]:
    return {name: db[name].count_documents({})
            for name in (WEBSITE_LOGS, EXIT_LINK_LOGS, TUTORIAL_PROGRESS_LOGS, DEAD_LETTERS)}


def test_the_visitor_ids_of_a_username_are_found(store: EventStore) -> None:
    load(store, {"alice", "bob"})
    assert erasure.find_learner(store.db, "alice") == erasure.Learner("alice", frozenset({ALICE_BROWSER}))
    assert erasure.find_learner(store.db, "alice", linked=False).visitor_ids == frozenset()
    with pytest.raises(ValueError):
        erasure.Learner()


def test_export_holds_everything_of_the_learner_and_nothing_else(store: EventStore) -> None:
    load(store, {"alice", "bob"})
    rows = list(erasure.export(store.db, erasure.find_learner(store.db, "alice")))
    by = {}
    for row in rows:
        by.setdefault(row["collection"], []).append(row["document"])
    assert {k: len(v) for k, v in by.items()} == {WEBSITE_LOGS: 3, EXIT_LINK_LOGS: 2, TUTORIAL_PROGRESS_LOGS: 1,
                                                   DEAD_LETTERS: 3}
    text = json.dumps(rows)  # JSON-ready: dates as ISO text
    assert "bob" not in text and BOB_BROWSER not in text
    assert by[WEBSITE_LOGS][0]["datetime"].endswith("+00:00")


def test_export_by_visitor_id_only(store: EventStore) -> None:
    load(store, {"alice", "bob"})
    rows = list(erasure.export(store.db, erasure.find_learner(store.db, visitor_id=BOB_BROWSER)))
    assert {r["collection"] for r in rows} == {WEBSITE_LOGS, EXIT_LINK_LOGS, DEAD_LETTERS}
    assert len([r for r in rows if r["collection"] == WEBSITE_LOGS]) == 3


def test_erase_removes_the_learner_and_the_rollups_end_as_if_they_never_came(store: EventStore) -> None:
    # What the rollups say when only bob ever came.
    load(store, {"bob"})
    rollups.run_rollups(store.db, now=NOW)
    never_came = snapshot(store.db)
    for name in store.db.list_collection_names():
        store.db[name].delete_many({})
    store.ensure_indexes()
    # Both came; the rollups counted both; then alice is erased.
    load(store, {"alice", "bob"})
    rollups.run_rollups(store.db, now=NOW)
    assert snapshot(store.db) != never_came
    dry = erasure.erase(store.db, erasure.find_learner(store.db, "alice"), dry_run=True)
    assert dry["deleted"][WEBSITE_LOGS] == 3 and counts(store.db)[WEBSITE_LOGS] == 6  # nothing changed
    result = erasure.erase(store.db, erasure.find_learner(store.db, "alice"))
    assert result["deleted"] == {WEBSITE_LOGS: 3, EXIT_LINK_LOGS: 2, TUTORIAL_PROGRESS_LOGS: 1, DEAD_LETTERS: 3,
                                 rollups.STATS_VISITS: 2}
    assert counts(store.db) == {WEBSITE_LOGS: 3, EXIT_LINK_LOGS: 2, TUTORIAL_PROGRESS_LOGS: 1, DEAD_LETTERS: 3}
    assert result["recomputed"] == result["days"] == [(NOW - timedelta(days=d)).date().isoformat() for d in (3, 1)]
    rollups.run_rollups(store.db, now=NOW + timedelta(minutes=1))  # the tutorial snapshot follows at the next run
    assert snapshot(store.db) == never_came
    # A later run, and a refresh of every day, change nothing: the figures moved once, at the erase.
    rollups.refresh_days(store.db, result["days"], now=NOW + timedelta(minutes=2))
    rollups.run_rollups(store.db, now=NOW + timedelta(minutes=3))
    assert snapshot(store.db) == never_came
    assert store.db[erasure.ERASURES].count_documents({}) == 1
    assert "alice" not in json.dumps(list(store.db[erasure.ERASURES].find({}, {"_id": 0})), default=str)


def test_without_linking_the_anonymous_page_views_stay(store: EventStore) -> None:
    load(store, {"alice"})
    result = erasure.erase(store.db, erasure.find_learner(store.db, "alice", linked=False))
    assert result["deleted"][WEBSITE_LOGS] == 2
    assert [d["visited_by"] for d in store.website_logs.find()] == ["AnonymousUser"]
