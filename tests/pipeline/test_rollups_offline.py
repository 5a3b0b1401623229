"""Rollups of page views synced from offline packages: counted in the days they happened,
with their source, and the learners who watched offline (docs/offline.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.rollups import read_daily, run_rollups
from tests.helpers.mongo import private_database

LONG_AGO = datetime(2024, 2, 10, 9, 30, tzinfo=UTC)  # watched offline, synced weeks later
SYNCED = datetime(2024, 3, 3, 12, 0, tzinfo=UTC)
NOW = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with private_database(tmp_path_factory.mktemp("nx-rollups-offline"), "eventlog_rollups_offline") as database:
        yield database


def view(when: datetime, source: str, user: str = "AnonymousUser", learner: str | None = None) -> dict[str, Any]:
    doc = {"_id": uuid.uuid4().hex, "datetime": when, "stored_at": SYNCED, "source": source, "sources": [source],
           "path_info": "/watch/BASH/Loops-in-BASH/English/", "event_name": "event.video.watch",
           "visited_by": user, "visitor_id": "p1", "is_bot": False, "first_time_visit": False,
           "view_kwargs": {"foss": "BASH", "tutorial": "Loops-in-BASH", "language": "English"}}
    if learner:
        doc["offline_learner"] = learner
    return doc


def test_offline_views_count_in_their_own_day_with_their_source_and_learner(db: Any) -> None:
    db.website_logs.insert_many([view(LONG_AGO, "offline", "learner1", "learner1"),
                                 view(LONG_AGO, "offline", "learner1", "learner1"),
                                 view(LONG_AGO, "offline", "learner2", "learner2"),
                                 view(SYNCED, "middleware")])
    db.website_logs.create_index("stored_at")
    run_rollups(db, now=NOW)
    day = read_daily(db, LONG_AGO.date(), LONG_AGO.date())
    assert day["totals"]["page_views"] == 3 and day["totals"]["tutorial_views"] == 3
    assert {r["key"]: r["count"] for r in day["top"]["source"]} == {"offline": 3}
    assert {r["key"]: r["count"] for r in day["top"]["offline_learner"]} == {"learner1": 2, "learner2": 1}
    later = read_daily(db, SYNCED.date(), SYNCED.date())
    assert {r["key"]: r["count"] for r in later["top"]["source"]} == {"middleware": 1}
    assert later["top"]["offline_learner"] == []  # online views name no offline learner
