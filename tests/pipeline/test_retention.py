"""pipeline.retention on a real nx-27017 (or the MongoDB at EVENTLOG_MONGO_URL): whole days
expire in bounded batches, rollups keep their figures, late events for expired days are not
stored, TTL indexes follow the setting."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline import retention, rollups
from pipeline.enrich import enrich_events
from pipeline.events import dead_letter, dead_letter_id, new_event_id
from pipeline.store import DEAD_LETTERS, EXIT_LINK_LOGS, WEBSITE_LOGS, EventStore
from tests.helpers.mongo import emptied_store, figures_of, private_event_store

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DAYS = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    with private_event_store(tmp_path_factory.mktemp("nx-retention"), "eventlog_retention") as store:
        yield store


@pytest.fixture
def store(server: EventStore) -> EventStore:
    return emptied_store(server)


def page_view(when: datetime, user: str = "AnonymousUser", **extra: Any) -> dict[str, Any]:
    return {"_id": uuid.uuid4().hex, "path_info": "/", "event_name": "event.home", "visited_by": user,
            "visitor_id": uuid.uuid4().hex, "datetime": when, "ip_address": "81.2.69.0", "is_bot": False,
            "first_time_visit": True, "source": "middleware", "sources": ["middleware"],
            "stored_at": when + timedelta(seconds=2), **extra}


def day(back: int, hour: int = 10) -> datetime:
    start = (NOW - timedelta(days=back)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return start


def load(store: EventStore, views: list[dict[str, Any]]) -> None:
    store.store_page_views(views, stored_at=None)
    store.exit_link_logs.insert_many([{"_id": uuid.uuid4().hex, "exit_link": "https://example.org/",
                                       "datetime": v["datetime"], "stored_at": v["stored_at"],
                                       "visited_by": v["visited_by"]} for v in views])
    store.dead_letters.insert_many([dict(dead_letter({"n": i}, "test", "enrich"), datetime=v["datetime"])
                                    for i, v in enumerate(views)])


def snapshot(db: Any) -> dict[str, list[dict[str, Any]]]:
    """Every rollup document, without run timestamps (whatever the rollups' layout)."""
    taken = {}
    for name in sorted(db.list_collection_names()):
        if name.startswith("stats_") and name not in (rollups.STATS_WATERMARKS, rollups.STATS_VISITS):
            taken[name] = figures_of(db[name])
    return taken


def test_the_cutoff_is_the_start_of_a_utc_day() -> None:
    assert retention.expired_before(30, NOW) == datetime(2026, 5, 16, tzinfo=UTC)
    assert retention.expired_before(0, NOW) is None


def test_whole_days_expire_and_the_rest_stays(store: EventStore) -> None:
    views = [page_view(day(40)), page_view(day(31, 23)), page_view(day(30, 0)), page_view(day(2))]
    load(store, views)
    rollups.run_rollups(store.db, now=NOW)
    result = retention.expire(store.db, DAYS, now=NOW)
    # The visit of the 31st day back at 23:00 ends less than a day before the cutoff: kept a day longer.
    assert result["deleted"] == {WEBSITE_LOGS: 2, EXIT_LINK_LOGS: 2, DEAD_LETTERS: 2, rollups.STATS_VISITS: 1}
    kept = {d["_id"] for d in store.website_logs.find()}
    assert kept == {views[2]["_id"], views[3]["_id"]}  # 30 days back counts from midnight: that day is whole
    assert store.exit_link_logs.count_documents({}) == 2 and store.dead_letters.count_documents({}) == 2


def test_deletes_are_bounded_per_run_and_the_next_run_goes_on(store: EventStore) -> None:
    load(store, [page_view(day(50, h % 24) + timedelta(minutes=h)) for h in range(10)])
    rollups.run_rollups(store.db, now=NOW)
    first = retention.expire(store.db, DAYS, now=NOW, batch=3, max_batches=2)
    assert first["deleted"][WEBSITE_LOGS] == 6 and store.website_logs.count_documents({}) == 4
    retention.expire(store.db, DAYS, now=NOW, batch=3, max_batches=2)
    assert store.website_logs.count_documents({}) == 0


def test_page_views_the_rollups_have_not_counted_are_kept(store: EventStore) -> None:
    load(store, [page_view(day(40))])
    result = retention.expire(store.db, DAYS, now=NOW)  # no rollup run yet
    assert result["waiting"] and result["deleted"][WEBSITE_LOGS] == 0
    assert store.website_logs.count_documents({}) == 1
    assert result["deleted"][DEAD_LETTERS] == 1  # dead letters are not counted by rollups


def test_zero_keeps_everything(store: EventStore) -> None:
    load(store, [page_view(day(4000))])
    rollups.run_rollups(store.db, now=NOW)
    assert retention.expire(store.db, 0, now=NOW)["deleted"] == {}
    assert store.website_logs.count_documents({}) == 1


def test_rollups_keep_their_figures_and_a_late_event_for_an_expired_day_is_not_stored(store: EventStore) -> None:
    load(store, [page_view(day(back, hour)) for back in (45, 40, 3) for hour in (9, 10, 11)])
    rollups.run_rollups(store.db, now=NOW)
    before = snapshot(store.db)
    assert before, "the rollups wrote something"
    retention.expire(store.db, DAYS, now=NOW)
    assert store.website_logs.count_documents({}) == 3
    # A late event for an expired day (an offline replay, a spool backlog) arrives now.
    late = json.dumps({"event_id": new_event_id(), "source": "middleware", "path_info": "/", "visited_by": "late",
                       "user_agent": "", "ip_address": None, "datetime": day(40, 12).timestamp()})
    writes, dead = enrich_events([late], None, expired_before=retention.expired_before(DAYS, NOW))
    assert writes == [] and [d["_id"] for d in dead] == [dead_letter_id(late)]  # the spool's check: done
    store.store_dead_letters(dead)
    assert "late" not in dead[0]["raw"] and dead[0]["stage"] == "retention"  # the event itself is not kept
    rollups.run_rollups(store.db, now=NOW + timedelta(minutes=5))
    assert snapshot(store.db) == before


def test_recent_events_pass_the_enrichment_cutoff() -> None:
    recent = {"event_id": new_event_id(), "source": "middleware", "path_info": "/", "visited_by": "x",
              "user_agent": "", "ip_address": None, "datetime": time.time()}
    writes, dead = enrich_events([recent], None, expired_before=retention.expired_before(DAYS))
    assert len(writes) == 1 and dead == []


def ttl_of(coll: Any) -> Any:
    index = retention._datetime_index(coll)  # noqa: SLF001 - what the server reports
    return index.get("expireAfterSeconds") if index else "no index"


def test_ttl_indexes_follow_the_setting(store: EventStore) -> None:
    before = retention.ensure_ttl(store.db, DAYS)
    assert before[WEBSITE_LOGS] == before[EXIT_LINK_LOGS] == "waiting for the rollups' first run"
    assert ttl_of(store.website_logs) is None
    load(store, [page_view(day(2))])
    rollups.run_rollups(store.db, now=NOW)
    done = retention.ensure_ttl(store.db, DAYS)
    wanted = (DAYS + retention.TTL_MARGIN_DAYS) * retention.DAY
    if any(v.startswith("no ttl") for v in done.values()):
        pytest.skip(f"this server keeps no TTL indexes: {done}")
    assert {name: ttl_of(store.db[name]) for name in retention.RAW_COLLECTIONS} == dict.fromkeys(
        retention.RAW_COLLECTIONS, wanted)
    assert set(retention.ensure_ttl(store.db, DAYS).values()) == {"unchanged"}
    retention.ensure_ttl(store.db, 0)
    assert {ttl_of(store.db[name]) for name in retention.RAW_COLLECTIONS} == {None}


def test_what_the_server_does_with_the_ttl_index(store: EventStore, tmp_path: Path) -> None:
    """Not a requirement (the batched delete is the rule), a record of the server's behaviour:
    MongoDB removes expired documents within a minute; nx-27017 0.8.1 purges them on the next
    operation on the collection. Either way nothing newer than the TTL goes."""
    load(store, [page_view(day(2))])
    rollups.run_rollups(store.db, now=NOW)
    retention.ensure_ttl(store.db, DAYS)
    real_now = datetime.now(UTC)
    old, recent = page_view(real_now - timedelta(days=DAYS + 3)), page_view(real_now - timedelta(days=DAYS - 3))
    store.website_logs.insert_many([old, recent])
    ids = {d["_id"] for d in store.website_logs.find()}
    assert recent["_id"] in ids
    (tmp_path / "ttl.txt").write_text(f"old kept by the server alone: {old['_id'] in ids}")
    retention.ensure_ttl(store.db, 0)
