"""Visits, entry/exit pages, paths, campaigns, sites and range uniques of pipeline.rollups,
and the incremental engine against a first run over the same events (nx-27017 or
EVENTLOG_MONGO_URL). The hand-built data set is test_rollups.py's."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from loadtest.dashboard_bench import generate_events
from pipeline.rollups import merge as rollup_merge
from pipeline.rollups import (
    read_campaigns,
    read_daily,
    read_entry_pages,
    read_exit_pages,
    read_paths,
    read_series,
    read_sites,
    read_summary,
    refresh_days,
    rollup_state,
    run_rollups,
)
from pipeline.rollups import run as rollup_run
from pipeline.rollups import selection as rollup_selection
from tests.helpers.mongo import emptied, figures_of, private_database
from tests.pipeline.test_rollups import (
    ANON,
    CHROME_WIN,
    COLLECTIONS,
    D1,
    D2,
    D3,
    GB,
    HOME,
    NOW,
    SEARCH,
    STATS,
    TUTORIALS,
    event,
    load,
    watch,
)

GS_EN = "/watch/Python/Getting-Started/English/"


@pytest.fixture(autouse=True, params=["visits indexed in memory", "one lookup per visitor"])
def visit_lookups(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test both ways a run finds a visitor's stored visits (pipeline.rollups.run.index_visits_for)."""
    monkeypatch.setattr(rollup_run, "LOOKUP_COST_RATIO", 10**9 if request.param.startswith("visits") else 0)
    return request.param


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with private_database(tmp_path_factory.mktemp("nx-rollup-visits"), "eventlog_rollup_visits") as db:
        yield db


@pytest.fixture
def db(database: Any) -> Any:
    return emptied(database, COLLECTIONS)


def stats(db: Any) -> dict[str, list[dict[str, Any]]]:
    """Every rollup document, without run timestamps."""
    return {name: figures_of(db[name]) for name in STATS}


def at(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def page(when: datetime, visitor: str, path: dict[str, Any] = HOME, stored: datetime | None = None,
         **extra: Any) -> dict[str, Any]:
    doc = event(D1, 0, visitor, ANON, False, CHROME_WIN, GB, path, **extra)
    doc["datetime"] = when
    doc["stored_at"] = stored or when + timedelta(seconds=1)
    doc["updated_ts"] = doc["stored_at"].timestamp()
    return doc


# ---------------------------------------------------------------- the hand-built data set


def test_visits_per_day_by_hand(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    days = {d["day"]: d for d in read_daily(db, D1, D3)["days"]}
    # D1: v1 3 pages (8:20-9:00), alice 2, bob 2, v4 1 (a bounce); 20 min apart = one visit each
    figures = ("visits", "bounces", "visit_pages", "visit_duration_total")
    assert {k: days["2024-03-01"][k] for k in figures} == {
        "visits": 4, "bounces": 1, "visit_pages": 8,
        "visit_duration_total": 2400 + 300 + 1200 + 700 + 1200 + 60 + 600}  # span + the last page's engaged time
    assert {k: days["2024-03-02"][k] for k in figures} == {
        "visits": 3, "bounces": 1, "visit_pages": 5, "visit_duration_total": 1200 + 1400 + 30}
    assert {k: days["2024-03-03"][k] for k in figures} == {  # the page view without a visitor id makes no visit
        "visits": 2, "bounces": 1, "visit_pages": 3, "visit_duration_total": 1200 + 12}
    assert days["2024-03-01"]["bounce_rate"] == 0.25 and days["2024-03-01"]["pages_per_visit"] == 2.0


def test_range_figures_by_hand(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    summary = read_summary(db, D1, D3)
    assert summary == {
        "start": "2024-03-01", "end": "2024-03-03", "site": None, "page_views": 17,
        "unique_visitors": 6,  # v1..v6 once each, though on 9 visitor-days
        "logged_in_users": 3, "new_visitors": 5, "visits": 9, "bounces": 3, "bounce_rate": round(3 / 9, 4),
        "pages_per_visit": round(16 / 9, 3), "visit_duration_avg": round((6460 + 2630 + 1212) / 9, 3),
        "uniques_exact": True}
    totals = read_daily(db, D1, D3)["totals"]
    assert (totals["unique_visitors"], totals["visitor_days"]) == (6, 9)
    assert (totals["logged_in_users"], totals["user_days"]) == (3, 5)
    assert read_entry_pages(db, D1, D3, limit=2) == [
        {"path": "/", "visits": 5, "share": round(5 / 9, 4), "bounces": 0, "bounce_rate": 0.0},
        {"path": "/watch/Python/Loops/Hindi/", "visits": 2, "share": round(2 / 9, 4), "bounces": 1,
         "bounce_rate": 0.5}]
    assert read_exit_pages(db, D1, D3, limit=1) == [
        {"path": GS_EN, "visits": 3, "share": round(3 / 9, 4), "bounces": 0, "bounce_rate": 0.0}]
    assert [d["visits"] for d in read_series(db, D1 - timedelta(days=1), D3)] == [0, 4, 3, 2]


def test_paths_by_hand(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    home = read_paths(db, D1, D3, entry_path="/")
    assert home["visits"] == 5
    assert home["steps"] == [
        {"step": 1, "visits": 5, "dropped": 0, "drop_rate": 0.0},
        {"step": 2, "visits": 5, "dropped": 4, "drop_rate": 0.8},
        {"step": 3, "visits": 1, "dropped": 1, "drop_rate": 1.0},
        {"step": 4, "visits": 0, "dropped": None, "drop_rate": None}]
    assert home["flows"][0] == {"steps": [{"path": "/", "event": "event.home"},
                                          {"path": GS_EN, "event": "event.video.watch"}],
                                "visits": 2, "share": 0.4, "ended": True}
    assert len(home["flows"]) == 4 and home["complete"] is True
    three = [{"path": "/", "event": "event.home"}, {"path": "/tutorial-search/", "event": "event.tutorial.search"},
             {"path": GS_EN, "event": "event.video.watch"}]
    assert {"steps": three, "visits": 1, "share": 0.2, "ended": True} in home["flows"]
    watched = read_paths(db, D1, D3, event_name="event.video.watch")
    assert watched["visits"] == 2 and [f["visits"] for f in watched["flows"]] == [1, 1]
    assert read_paths(db, D1, D3, entry_path="/nowhere/")["visits"] == 0


# ---------------------------------------------------------------- visits across boundaries


def test_a_late_page_view_joins_two_visits(db: Any) -> None:
    first, second = page(at(D1, 12, 0), "w"), page(at(D1, 12, 50), "w", SEARCH)  # 50 min apart: two visits
    db.website_logs.insert_many([first, second])
    run_rollups(db, now=NOW)
    assert read_summary(db, D1, D1)["visits"] == 2
    late = page(at(D1, 12, 25), "w", watch("Python", "Loops", "English"), stored=NOW + timedelta(hours=1))
    db.website_logs.insert_one(late)
    result = run_rollups(db, now=NOW + timedelta(hours=2))
    assert result["events"] == 1 and result["visits"] == 1  # the late one (12:50, in the overlap, was counted)
    summary = read_summary(db, D1, D1)
    assert (summary["visits"], summary["bounces"], summary["pages_per_visit"]) == (1, 0, 3.0)
    assert summary["visit_duration_avg"] == 50 * 60
    assert [f["steps"][-1]["path"] for f in read_paths(db, D1, D1)["flows"]] == ["/tutorial-search/"]
    incremental = stats(db)
    refresh_days(db, [D1], NOW + timedelta(hours=2))  # from the raw logs: the same documents
    assert stats(db) == incremental


def test_a_visit_over_midnight_counts_on_the_day_it_started(db: Any) -> None:
    db.website_logs.insert_many([page(at(D1, 23, 50), "m"), page(at(D2, 0, 10), "m", SEARCH)])
    run_rollups(db, now=NOW)
    days = {d["day"]: d for d in read_series(db, D1, D2)}
    assert (days["2024-03-01"]["visits"], days["2024-03-02"]["visits"]) == (1, 0)
    assert (days["2024-03-01"]["page_views"], days["2024-03-02"]["page_views"]) == (1, 1)
    assert read_summary(db, D1, D2)["visit_duration_avg"] == 20 * 60


def test_visit_gap_is_a_parameter(db: Any) -> None:
    db.website_logs.insert_many([page(at(D1, 12, 0), "g"), page(at(D1, 12, 20), "g")])
    run_rollups(db, now=NOW, visit_gap=timedelta(minutes=10))
    assert read_summary(db, D1, D1)["visits"] == 2


# ---------------------------------------------------------------- campaigns and sites


def test_campaigns_of_the_landing_page(db: Any) -> None:
    utm = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "dec"}
    db.website_logs.insert_many([
        page(at(D1, 10, 0), "c1", **utm), page(at(D1, 10, 5), "c1", SEARCH),
        page(at(D1, 10, 6), "c1", SEARCH, utm_source="ignored"),  # not the landing page
        page(at(D1, 11, 0), "c2", utm_source="twitter"),
        page(at(D1, 12, 0), "c3"),  # no campaign
    ])
    run_rollups(db, now=NOW)
    assert read_campaigns(db, D1, D1) == [
        {"source": "newsletter", "medium": "email", "campaign": "dec", "visits": 1, "page_views": 3, "bounces": 0,
         "bounce_rate": 0.0, "pages_per_visit": 3.0},
        {"source": "twitter", "medium": None, "campaign": None, "visits": 1, "page_views": 1, "bounces": 1,
         "bounce_rate": 1.0, "pages_per_visit": 1.0}]


def test_site_filter(db: Any) -> None:
    db.website_logs.insert_many([page(at(D1, 10, 0), "s1", site="forum"),
                                 page(at(D1, 10, 1), "s1", SEARCH, site="forum"),
                                 page(at(D1, 10, 0), "s2"), page(at(D1, 11, 0), "s3", site="learn")])
    run_rollups(db, now=NOW)
    assert read_sites(db, D1, D1) == ["", "forum", "learn"]
    forum = read_summary(db, D1, D1, site="forum")
    assert (forum["page_views"], forum["unique_visitors"], forum["visits"]) == (2, 1, 1)
    assert read_summary(db, D1, D1)["page_views"] == 4
    assert read_summary(db, D1, D1, site="")["page_views"] == 1  # events stored without a site
    assert read_daily(db, D1, D1, site="learn")["totals"]["page_views"] == 1
    assert read_summary(db, D1, D1, site="nowhere")["page_views"] == 0


# ---------------------------------------------------------------- incremental = first run


def _generated(n: int) -> list[dict[str, Any]]:
    return sorted(generate_events(n, 3, seed=5, end=NOW), key=lambda d: d["updated_ts"])


def test_incremental_runs_equal_one_first_run(db: Any) -> None:
    """Events arrive in three batches (one of them late for its day), some are changed after they
    were stored, runs overlap: the rollup documents equal those of one run over everything."""
    events = _generated(900)
    rng = random.Random(3)
    later = NOW + timedelta(hours=1)
    for doc in rng.sample(events, 40):  # offline replays: stored an hour after the data set ends
        doc["stored_at"], doc["updated_ts"] = later, later.timestamp()
    events.sort(key=lambda d: d["updated_ts"])
    for part in (events[:300], events[300:600], events[600:]):
        db.website_logs.insert_many(part)
        run_rollups(db, now=NOW)
    changed = rng.sample(events[:600], 30)  # the tracker's engaged time arrives after the page view
    for doc in changed:
        db.website_logs.update_one({"_id": doc["_id"]}, {"$set": {"visit_duration": 42.0,
                                                                 "updated_ts": later.timestamp() + 60}})
    run_rollups(db, now=NOW)
    run_rollups(db, now=NOW)  # idle
    incremental = stats(db)
    for name in STATS + ("stats_watermarks",):
        db[name].delete_many({})
    run_rollups(db, now=NOW)
    assert stats(db) == incremental
    human = [d for d in db.website_logs.find({}) if not d["is_bot"]]
    summary = read_summary(db, NOW - timedelta(days=3), NOW)
    assert summary["page_views"] == len(human)
    assert summary["unique_visitors"] == len({d["visitor_id"] for d in human}) and summary["uniques_exact"]


def test_a_first_run_in_small_chunks_equals_one_in_a_single_chunk(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Visits that continue from one chunk into the next are the same visits: a run finds what
    it wrote itself a chunk earlier (in memory or in the store)."""
    events = _generated(600)
    db.website_logs.insert_many(events)
    run_rollups(db, now=NOW)
    whole = stats(db)
    assert len(whole["stats_visits"]) < len([e for e in events if not e["is_bot"]])  # visits of several pages
    for name in STATS + ("stats_watermarks",):
        db[name].delete_many({})
    monkeypatch.setattr(rollup_selection, "CHUNK", 25)
    assert run_rollups(db, now=NOW)["events"] == 600
    assert stats(db) == whole


def test_visit_buckets_recounted_from_their_rows_equal_those_counted_from_the_visits(
        db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs that look visitors up one by one update a visit bucket from its rows (the changed
    visits' rows replaced); a first run over many visitors recounts the buckets from stats_visits.
    Visits extended, joined and moved by later and changed page views: both give the same documents."""
    events = _generated(900)
    rng = random.Random(6)
    later = NOW + timedelta(hours=1)
    for doc in rng.sample(events, 60):
        doc["stored_at"], doc["updated_ts"] = later, later.timestamp()
    events.sort(key=lambda d: d["updated_ts"])
    monkeypatch.setattr(rollup_run, "LOOKUP_COST_RATIO", 0)
    for part in (events[:200], events[200:500], events[500:]):
        db.website_logs.insert_many(part)
        run_rollups(db, now=NOW)
    for doc in rng.sample(events, 30):
        db.website_logs.update_one({"_id": doc["_id"]}, {"$set": {"visit_duration": 17.5,
                                                                 "updated_ts": later.timestamp() + 60}})
    run_rollups(db, now=NOW)
    from_rows = stats(db)
    assert all(doc.get("vrows") for doc in from_rows["stats_visit_buckets"])
    for name in STATS + ("stats_watermarks",):
        db[name].delete_many({})
    monkeypatch.setattr(rollup_run, "LOOKUP_COST_RATIO", 10**9)
    run_rollups(db, now=NOW)
    assert stats(db) == from_rows


class Killed(BaseException):
    """The run's process stops here (BaseException: nothing in a run may catch it)."""


@pytest.mark.parametrize("step", ["update_visit_buckets", "write_hours", "write_days"])
def test_a_run_killed_before_its_merges_is_repaired_by_the_next(db: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  step: str) -> None:
    """A run stops after writing buckets and visits, before merging them into hours and days; the
    next run re-selects the same events, finds them counted already, and must still merge them.
    (A killed process also leaves its lease: test_rollups.py has the lease's expiry.)"""
    events = _generated(600)
    rng = random.Random(4)
    later = NOW + timedelta(hours=1)
    for doc in rng.sample(events, 30):  # offline replays into old days: nothing else touches those buckets
        doc["stored_at"], doc["updated_ts"] = later, later.timestamp()
    events.sort(key=lambda d: d["updated_ts"])
    db.website_logs.insert_many(events[:400])
    run_rollups(db, now=NOW)
    db.website_logs.insert_many(events[400:])

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(rollup_merge, step, killed)
        with pytest.raises(Killed):
            run_rollups(db, now=NOW)
    state = rollup_state(db)
    assert state["rollups_pending_hours"] > 0 and not state["rollups_running"]
    assert run_rollups(db, now=NOW)["skipped"] is None
    assert rollup_state(db)["rollups_pending_hours"] == 0
    repaired = stats(db)
    for name in STATS + ("stats_watermarks",):
        db[name].delete_many({})
    run_rollups(db, now=NOW)
    assert stats(db) == repaired
    assert db.stats_watermarks.find_one({"_id": "pending"}) is None


def test_range_uniques_equal_exact_counts(db: Any) -> None:
    events = list(generate_events(4000, 30, seed=8, end=NOW))
    db.website_logs.insert_many(events)
    run_rollups(db, now=NOW)
    human = [d for d in events if not d["is_bot"]]
    users = {d["visited_by"] for d in human} - {ANON}
    for first in (NOW - timedelta(days=29), NOW - timedelta(days=6)):
        inside = [d for d in human if d["datetime"].date() >= first.date()]
        summary = read_summary(db, first, NOW)
        assert summary["unique_visitors"] == len({d["visitor_id"] for d in inside})
        assert summary["logged_in_users"] == len({d["visited_by"] for d in inside} - {ANON})
    totals = read_daily(db, NOW - timedelta(days=29), NOW)["totals"]
    assert totals["visitor_days"] > totals["unique_visitors"]  # the old sum counts returning visitors again
    assert totals["logged_in_users"] == len(users)


def test_a_redelivered_event_changes_nothing(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    before = stats(db)
    doc = db.website_logs.find_one({"visitor_id": "v5"})
    db.website_logs.update_one({"_id": doc["_id"]}, {"$set": {"updated_ts": (NOW + timedelta(hours=3)).timestamp()}})
    result = run_rollups(db, now=NOW + timedelta(hours=4), tutorials=TUTORIALS)
    assert result["events"] == 1 and result["visits"] == 0  # re-counted: the same figures
    assert stats(db) == before
    assert uuid.UUID(doc["_id"])  # a real event id (not a generated stand-in)
