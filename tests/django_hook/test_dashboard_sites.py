"""The dashboard's site filter (?site=) and its offline tables, on real rollups (nx-27017)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client, override_settings

from pipeline.rollups import run_rollups
from tests.helpers.mongo import private_database

NOW = datetime.now(UTC)
DAY = NOW - timedelta(days=2)
RANGE = f"start={DAY.date()}&end={NOW.date()}"


def view(site: str, source: str = "middleware", learner: str | None = None, dnt: bool = False) -> dict[str, Any]:
    doc = {"_id": uuid.uuid4().hex, "datetime": DAY, "stored_at": NOW - timedelta(minutes=5), "source": source,
           "sources": [source], "site": site, "path_info": "/", "event_name": "event.home.view",
           "visited_by": learner or "AnonymousUser", "visitor_id": uuid.uuid4().hex, "is_bot": False, "dnt": False}
    if learner:
        doc["offline_learner"] = learner
    if dnt:  # as the middleware records it (django_hook/middleware.py)
        doc.update(dnt=True, visitor_id=None)
    return doc


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with private_database(tmp_path_factory.mktemp("nx-dash-sites"), "eventlog_dash_sites") as database:
        database.website_logs.insert_many([view("main"), view("main"), view("forums"),
                                           view("main", "offline", "learner3"), view("main", dnt=True)])
        database.website_logs.create_index("stored_at")
        run_rollups(database, tutorials=None)
        yield database


@pytest.fixture
def staff(db: Any) -> Iterator[Client]:  # noqa: ARG001 - rolled up first
    user, _ = get_user_model().objects.get_or_create(username="sites-staff", defaults={"is_staff": True})
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    cache.clear()
    client_db = db.client.address
    with override_settings(EVENTLOG_MONGO_URL=f"mongodb://{client_db[0]}:{client_db[1]}", EVENTLOG_MONGO_DB=db.name):
        yield client


def test_the_site_filter_shows_one_sites_figures(staff: Client) -> None:
    every = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()
    forums = staff.get(f"/eventlog/dashboard/data.json?{RANGE}&site=forums").json()
    assert every["kpis"]["page_views"] == 5 and forums["kpis"]["page_views"] == 1
    assert sorted(every["sites"]) == ["forums", "main"] and forums["site"] == "forums"
    page = staff.get(f"/eventlog/dashboard/?{RANGE}&site=forums").content.decode()
    assert '<option value="forums" selected>' in page


def test_offline_views_and_learners_are_shown(staff: Client) -> None:
    tables = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()["tables"]
    assert {r["source"]: r["count"] for r in tables["sources"]} == {"middleware": 4, "offline": 1}
    assert [(r["learner"], r["count"]) for r in tables["offline_learners"]] == [("learner3", 1)]
    page = staff.get(f"/eventlog/dashboard/?{RANGE}").content.decode()
    assert "Offline learners" in page and "learner3" in page


def test_do_not_track_page_views_are_counted_apart(staff: Client) -> None:
    tables = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()["tables"]
    assert tables["dnt"] == [{"signal": "Do Not Track or GPC", "count": 1, "share": 0.2}]
    forums = staff.get(f"/eventlog/dashboard/data.json?{RANGE}&site=forums").json()["tables"]
    assert forums["dnt"] == []
    page = staff.get(f"/eventlog/dashboard/?{RANGE}").content.decode()
    assert "Do Not Track / GPC" in page
