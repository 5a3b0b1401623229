"""pipeline.live: the live view's figures from the newest page views, on a real server
(nx-27017, or the MongoDB at EVENTLOG_MONGO_URL) with documents inserted for the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline import live

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def view(minutes_ago: float, visitor: str | None, path: str, bot: bool = False, title: str = "") -> dict[str, Any]:
    at = NOW - timedelta(minutes=minutes_ago)
    return {"_id": uuid.uuid4().hex, "datetime": at, "visitor_id": visitor, "path_info": path,
            "page_title": title, "is_bot": bot, "visited_by": "AnonymousUser",
            "updated_ts": (at + timedelta(seconds=1)).timestamp()}  # as the store stamps it


@pytest.fixture
def db(mongo) -> Iterator[Any]:  # noqa: ANN001 - the session's server (tests/conftest.py)
    database = mongo.client[f"live_{uuid.uuid4().hex[:8]}"]
    database.website_logs.create_index("datetime")
    database.website_logs.create_index("updated_ts")
    yield database
    mongo.client.drop_database(database.name)


def test_visitors_page_views_and_the_pages_they_are_on(db: Any) -> None:
    db.website_logs.insert_many([
        view(0.5, "anna", "/watch/b/", title="Loops"),  # anna's newest: she is on /watch/b/
        view(2, "anna", "/"),
        view(3, "ben", "/watch/b/"),
        view(4.5, "carl", "/search/"),
        view(4.9, None, "/search/"),  # no visitor id (a cookie-less client): a page view, not a visitor
        view(1, "bot1", "/sitemap.xml", bot=True),  # bots are not people
        view(12, "dora", "/cdcontent/"),  # in the 30 minutes, not in the 5
        view(29.5, "anna", "/"),
        view(31, "erik", "/"),  # older than the long window
        view(-1, "fred", "/"),  # after "now" (clock skew): not yet
    ])
    figures = live.live_figures(db, now=NOW)
    assert figures["windows"] == [{"minutes": 5, "visitors": 3, "page_views": 5},
                                  {"minutes": 30, "visitors": 4, "page_views": 7}]
    assert figures["pages"] == [{"path": "/watch/b/", "title": "Loops", "visitors": 2},
                                {"path": "/search/", "title": "", "visitors": 1}]
    assert sum(figures["per_minute"]) == 7 and len(figures["per_minute"]) == 30
    assert figures["per_minute"][-1] == 1 and figures["per_minute"][0] == 1  # 0.5 and 29.5 minutes ago
    assert figures["truncated"] is False


def test_a_busy_site_reads_only_the_newest_events(db: Any) -> None:
    db.website_logs.insert_many([view(m, f"v{m}", "/") for m in (1, 2, 3, 4, 6)])
    figures = live.live_figures(db, now=NOW, max_events=3)
    assert figures["truncated"] is True
    assert figures["windows"][1] == {"minutes": 30, "visitors": 3, "page_views": 3}  # the newest three


def test_no_traffic_is_zeros(db: Any) -> None:
    figures = live.live_figures(db, now=NOW)
    assert [w["visitors"] for w in figures["windows"]] == [0, 0] and figures["pages"] == []
    assert figures["per_minute"] == [0] * 30
