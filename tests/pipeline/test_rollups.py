"""pipeline.rollups against a real nx-27017 server (or EVENTLOG_MONGO_URL).

A small hand-built data set (three days, 20 page views, 4 exit links, 7 progress
records) whose every figure is computed by hand below. Visits, paths, campaigns,
sites, range uniques and the incremental engine's equivalence with a first run are
in test_rollups_visits.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from pipeline import rollups
from pipeline.rollups import (
    acquire_lock,
    read_daily,
    read_tutorials,
    refresh_days,
    release_lock,
    rollup_day,
    rollup_tutorials,
    run_rollups,
    tables,
)
from tests.helpers.mongo import emptied, figures_of, private_database

COLLECTIONS = ("website_logs", "exit_link_logs", "tutorial_progress_logs", "stats_daily", "stats_daily_site",
               "stats_hourly", "stats_buckets", "stats_bucket_rows", "stats_visit_buckets", "stats_visits",
               "stats_tutorials", "stats_watermarks")
STATS = ("stats_daily", "stats_daily_site", "stats_hourly", "stats_buckets", "stats_bucket_rows", "stats_visit_buckets",
         "stats_visits", "stats_tutorials")
D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)
NOW = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)
TUTORIALS = {"Python": ["Getting-Started", "Loops", "Functions", "Classes"]}


# ---------------------------------------------------------------- server


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with private_database(tmp_path_factory.mktemp("nx-rollups"), "eventlog_rollups") as db:
        yield db


@pytest.fixture
def db(database: Any) -> Any:
    return emptied(database, COLLECTIONS)


# ---------------------------------------------------------------- data set

CHROME_WIN = dict(browser_family="Chrome", os_family="Windows", device_family="Other", device_type="PC")
FIREFOX_LINUX = dict(browser_family="Firefox", os_family="Linux", device_family="Other", device_type="PC")
SAFARI_IOS = dict(browser_family="Mobile Safari", os_family="iOS", device_family="iPhone", device_type="Mobile")
CHROME_ANDROID = dict(browser_family="Chrome Mobile", os_family="Android", device_family="Samsung SM-G960F",
                      device_type="Mobile")
GOOGLEBOT = dict(browser_family="Googlebot", os_family="Other", device_family="Spider", device_type="Bot", is_bot=True)
BINGBOT = dict(browser_family="bingbot", os_family="Other", device_family="Spider", device_type="Bot", is_bot=True)
GB = dict(country="United Kingdom", country_code="GB", region="England", city="London")
US = dict(country="United States", country_code="US", region="Washington", city="Milton")
CN = dict(country="China", country_code="CN", region="Jilin Sheng", city="Changchun")
DE = dict(country="Germany", country_code="DE", region=None, city=None)
NOWHERE = dict(country=None, country_code=None, region=None, city=None)


def watch(foss: str, tutorial: str, language: str) -> dict[str, Any]:
    return dict(path_info=f"/watch/{foss}/{tutorial}/{language}/", event_name="event.video.watch",
                view_kwargs={"foss": foss, "tutorial": tutorial, "language": language})


HOME = dict(path_info="/", event_name="event.home")
SEARCH = dict(path_info="/tutorial-search/", event_name="event.tutorial.search")
CD = dict(path_info="/cdcontent/", event_name="event.cdcontent")
ANON = "AnonymousUser"


def event(day: date, minute: int, visitor: str | None, user: str, first: bool, ua: dict, geo: dict, page: dict,
          referrer: str = "", duration: float | None = None, stored_at: datetime | None = None,
          **extra: Any) -> dict[str, Any]:
    when = datetime(day.year, day.month, day.day, 8, tzinfo=UTC) + timedelta(minutes=minute * 20)
    doc: dict[str, Any] = {
        "_id": uuid.uuid4().hex, "visited_by": user, "ip_address": "10.0.0.1", "method": "GET", "datetime": when,
        "referrer": referrer, "page_title": "", "browser_version": "1", "os_version": "1", "first_time_visit": first,
        "latitude": None, "longitude": None, "view_args": [], "view_kwargs": {}, "post_data": None,
        "source": "middleware", "user_agent": "ua", "visitor_id": visitor, "status_code": 200, "url_mapped": True,
        "is_bot": False, "stored_at": stored_at or when + timedelta(seconds=1),
    }
    doc["updated_ts"] = doc["stored_at"].timestamp()  # as the store writes it
    doc.update(ua)
    doc.update(geo)
    doc.update(page)
    if duration is not None:
        doc["visit_duration"] = duration
    doc.update(extra)
    return doc


def page_views() -> list[dict[str, Any]]:
    google, internal = "https://www.google.com/search?q=python", "http://testserver/"
    evs = [
        # ---- day 1: 10 views, 2 of them bots
        event(D1, 1, "v1", ANON, True, CHROME_WIN, GB, HOME, google, 5),
        event(D1, 2, "v1", ANON, False, CHROME_WIN, GB, SEARCH, internal, 25),
        event(D1, 3, "v1", ANON, False, CHROME_WIN, GB, watch("Python", "Getting-Started", "English"),
              internal + "tutorial-search/", 300),
        event(D1, 4, "v2", "alice", True, FIREFOX_LINUX, US, HOME),
        event(D1, 5, "v2", "alice", False, FIREFOX_LINUX, US, watch("Python", "Getting-Started", "English"),
              duration=700),
        event(D1, 6, "v3", "bob", False, SAFARI_IOS, CN, watch("Python", "Loops", "Hindi"), duration=10),
        event(D1, 7, "v3", "bob", False, SAFARI_IOS, CN, HOME, duration=60),
        event(D1, 8, "vb1", ANON, True, GOOGLEBOT, US, HOME),
        event(D1, 9, "vb1", ANON, False, GOOGLEBOT, US, SEARCH, duration=15),  # a bot: not a duration sample
        event(D1, 10, "v4", ANON, True, CHROME_ANDROID, NOWHERE, CD, duration=600),
        # ---- day 2: 6 views, 1 bot
        event(D2, 1, "v1", ANON, False, CHROME_WIN, GB, HOME, duration=45),
        event(D2, 2, "v1", ANON, False, CHROME_WIN, GB, watch("Python", "Getting-Started", "English")),
        event(D2, 3, "v5", "carol", True, FIREFOX_LINUX, GB, HOME, "https://duckduckgo.com/", 2),
        event(D2, 4, "v5", "carol", False, FIREFOX_LINUX, GB, watch("Python", "Loops", "English"), duration=200),
        event(D2, 5, "vb2", ANON, True, BINGBOT, US, HOME),
        event(D2, 6, "v2", "alice", False, FIREFOX_LINUX, US, SEARCH, duration=30),
        # ---- day 3: 4 views, no bots; one without visitor id, one from before is_bot existed
        event(D3, 1, "v6", ANON, True, CHROME_WIN, DE, HOME),
        event(D3, 2, "v6", ANON, False, CHROME_WIN, DE, watch("Python", "Getting-Started", "Hindi")),
        event(D3, 3, "v3", "bob", False, SAFARI_IOS, CN, watch("Python", "Loops", "Hindi"), duration=12),
        event(D3, 4, None, ANON, False, CHROME_WIN, GB, HOME),
    ]
    del evs[-1]["is_bot"]
    return evs


def exit_links() -> list[dict[str, Any]]:
    def link(day: date, minute: int, url: str) -> dict[str, Any]:
        when = datetime(day.year, day.month, day.day, 9, minute, tzinfo=UTC)
        return {"_id": uuid.uuid4().hex, "exit_link": url, "path_info": "/", "page_view_id": uuid.uuid4().hex,
                "datetime": when, "visited_by": ANON}
    return [link(D1, 1, "https://github.com/x"), link(D1, 2, "https://github.com/x"),
            link(D1, 3, "https://www.python.org/"), link(D2, 1, "https://github.com/x")]


def progress() -> list[dict[str, Any]]:
    def rec(user: str, language: str, tutorial: str, total: int, watched: int | None, visits: int,
            completed: bool, manual: bool = False) -> dict[str, Any]:
        doc = {"username": user, "foss": "Python", "language": language, "tutorial": tutorial,
               "total_minutes": total, "visits": visits, "visit_ids": [], "completed": completed,
               "completed_at": NOW if completed else None, "manual": manual}
        if watched is not None:
            doc["minutes_watched"] = list(range(watched))
        return doc
    return [
        rec("alice", "English", "Getting-Started", 10, 10, 3, True),
        rec("alice", "English", "Loops", 8, 7, 1, True, manual=True),
        rec("alice", "English", "Functions", 12, 2, 2, False),
        rec("bob", "English", "Getting-Started", 10, 9, 1, True),
        rec("carol", "English", "Getting-Started", 10, 0, 1, False),
        rec("bob", "Hindi", "Loops", 9, 9, 4, True),
        rec("dave", "Hindi", "Getting-Started", 11, None, 2, False),
    ]


def load(db: Any) -> None:
    db.website_logs.insert_many(page_views())
    db.website_logs.create_index("datetime")
    db.website_logs.create_index("stored_at")
    db.exit_link_logs.insert_many(exit_links())
    db.tutorial_progress_logs.insert_many(progress())


# ---------------------------------------------------------------- expectations (by hand)

DAY1 = {
    "all_views": 10, "page_views": 8, "bot_views": 2, "unique_visitors": 4, "new_visitors": 3,
    "returning_visitors": 1, "first_time_views": 3, "returning_views": 5, "logged_in_users": 2,
    "logged_in_views": 4, "anonymous_views": 4, "tutorial_views": 3, "exit_clicks": 3,
    "duration_samples": 7, "duration_total": 1700, "duration_avg": round(1700 / 7, 3),
}
DAY2 = {
    "all_views": 6, "page_views": 5, "bot_views": 1, "unique_visitors": 3, "new_visitors": 1,
    "returning_visitors": 2, "first_time_views": 1, "returning_views": 4, "logged_in_users": 2,
    "logged_in_views": 3, "anonymous_views": 2, "tutorial_views": 2, "exit_clicks": 1,
    "duration_samples": 4, "duration_total": 277, "duration_avg": 69.25,
}
DAY3 = {
    "all_views": 4, "page_views": 4, "bot_views": 0, "unique_visitors": 2, "new_visitors": 1,
    "returning_visitors": 1, "first_time_views": 1, "returning_views": 3, "logged_in_users": 1,
    "logged_in_views": 1, "anonymous_views": 3, "tutorial_views": 2, "exit_clicks": 0,
    "duration_samples": 1, "duration_total": 12, "duration_avg": 12.0,
}
DAY1_DIMS: dict[str, dict[tuple, int]] = {
    "event": {("event.home",): 3, ("event.tutorial.search",): 1, ("event.video.watch",): 3,
              ("event.cdcontent",): 1},
    "path": {("/",): 3, ("/tutorial-search/",): 1, ("/watch/Python/Getting-Started/English/",): 2,
             ("/watch/Python/Loops/Hindi/",): 1, ("/cdcontent/",): 1},
    "country": {("United Kingdom", "GB"): 3, ("United States", "US"): 2, ("China", "CN"): 2, (None, None): 1},
    "region": {("England", "United Kingdom", "GB"): 3, ("Washington", "United States", "US"): 2,
               ("Jilin Sheng", "China", "CN"): 2, (None, None, None): 1},
    "city": {("London", "England", "United Kingdom", "GB"): 3, ("Milton", "Washington", "United States", "US"): 2,
             ("Changchun", "Jilin Sheng", "China", "CN"): 2, (None, None, None, None): 1},
    "browser": {("Chrome",): 3, ("Chrome Mobile",): 1, ("Firefox",): 2, ("Mobile Safari",): 2},
    "os": {("Windows",): 3, ("Linux",): 2, ("iOS",): 2, ("Android",): 1},
    "device": {("Other",): 5, ("iPhone",): 2, ("Samsung SM-G960F",): 1},
    "device_type": {("PC",): 5, ("Mobile",): 3},
    "referrer": {("www.google.com",): 1, ("testserver",): 2, ("(direct)",): 5},
    "bot": {("Googlebot",): 2},
    "tutorial": {("Getting-Started", "Python", "English"): 2, ("Loops", "Python", "Hindi"): 1},
    "course": {("Python", "English"): 2, ("Python", "Hindi"): 1},
    "exit_link": {("https://github.com/x",): 2, ("https://www.python.org/",): 1},
    "source": {("middleware",): 8},
    # 5 | 25, 10 | 60 | 300 | 700, 600 (edges: 10 -> 10-30s, 60 -> 1-3m, 600 -> 10m+)
    "duration": {("0-10s",): 1, ("10-30s",): 2, ("1-3m",): 1, ("3-10m",): 1, ("10m+",): 2},
}


def daily(db: Any, day: date) -> dict[str, Any]:
    doc = db.stats_daily.find_one({"_id": day.isoformat()})
    assert doc is not None, f"no stats_daily for {day}"
    return doc


def scalars(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in DAY1}


def dims(db: Any, day: date) -> dict[str, dict[tuple, int]]:
    """The page view dimensions of a day document: {dimension: {key: count}}."""
    doc = daily(db, day)
    found: dict[str, dict[tuple, int]] = {}
    for name in rollups.DIMENSION_EXTRAS:
        rows = tables.rows(doc, name)
        if rows:
            width = 1 + len(rollups.DIMENSION_EXTRAS[name])
            found[name] = {tuple(row[:width]): row[width] for row in rows}
    return found


def snapshot(db: Any, day: date | None = None) -> dict[str, list[dict[str, Any]]]:
    """The stats documents (of one day, or all), without the run timestamps."""
    taken: dict[str, list[dict[str, Any]]] = {}
    for name in STATS:
        query = {"day": day.isoformat()} if day and name not in ("stats_tutorials", "stats_visits") else {}
        if day and name in ("stats_tutorials", "stats_visits"):
            continue
        taken[name] = figures_of(db[name], query)
    return taken


# ---------------------------------------------------------------- tests


def test_every_daily_figure(db: Any) -> None:
    load(db)
    result = run_rollups(db, now=NOW, tutorials=TUTORIALS)
    assert result["skipped"] is None
    assert result["days"] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert scalars(daily(db, D1)) == DAY1
    assert scalars(daily(db, D2)) == DAY2
    assert scalars(daily(db, D3)) == DAY3
    assert dims(db, D1) == DAY1_DIMS
    assert daily(db, D1)["distinct"]["path"] == 5
    assert daily(db, D1)["date"] == datetime(2024, 3, 1, tzinfo=UTC)
    day2 = dims(db, D2)
    assert day2["referrer"] == {("(direct)",): 4, ("duckduckgo.com",): 1}
    assert day2["duration"] == {("0-10s",): 1, ("30-60s",): 2, ("3-10m",): 1}
    assert day2["bot"] == {("bingbot",): 1}
    day3 = dims(db, D3)
    assert day3["country"] == {("Germany", "DE"): 2, ("China", "CN"): 1, ("United Kingdom", "GB"): 1}
    assert day3["browser"] == {("Chrome",): 3, ("Mobile Safari",): 1}  # the doc without is_bot is human
    assert "exit_link" not in day3 and "bot" not in day3
    assert db.stats_daily_site.find_one({"_id": "s||2024-03-01"})["page_views"] == 8  # the site "" (no site field)


def test_top_n_cut(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    load(db)
    monkeypatch.setitem(rollups.merge.DAY_LIMITS, "path", 2)
    rollup_day(db, D1, NOW)
    assert dims(db, D1)["path"] == {("/",): 3, ("/watch/Python/Getting-Started/English/",): 2}
    assert daily(db, D1)["distinct"]["path"] == 5
    assert daily(db, D1)["page_views"] == 8


def test_chunked_selection_gives_the_same_figures(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    load(db)
    # two page views share an updated_ts: a chunk never splits one stamp
    db.website_logs.update_many({"visitor_id": "v2"}, {"$set": {"updated_ts": 1709280000.5}})
    monkeypatch.setattr(rollups.selection, "CHUNK", 3)  # 20 page views in chunks of at most 3
    result = run_rollups(db, now=NOW, tutorials=TUTORIALS)
    assert result["events"] == 20
    assert scalars(daily(db, D1)) == DAY1 and scalars(daily(db, D2)) == DAY2 and scalars(daily(db, D3)) == DAY3
    assert dims(db, D1) == DAY1_DIMS


def test_idempotent_second_run(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    first = snapshot(db)
    again = run_rollups(db, now=NOW + timedelta(minutes=5), tutorials=TUTORIALS)
    # nothing new: what lies inside the safety overlap is re-selected (day 3's last page view,
    # day 2's last exit link); the page view is known as counted (Seen), the exit link's row is
    # unchanged, so no bucket, hour or day is rewritten
    assert again["events"] == 0 and again["days"] == [] and again["buckets"] == 0
    assert again["visits"] == 0
    assert snapshot(db) == first
    rollup_day(db, D1, NOW)
    rollup_day(db, D1, NOW)
    assert snapshot(db) == first


def test_late_event_lands_in_its_own_day(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    before = {day: snapshot(db, day) for day in (D1, D2, D3)}
    late = event(D1, 11, "v8", ANON, True, dict(browser_family="Opera", os_family="Windows", device_family="Other",
                                                   device_type="PC"),
                 dict(country="France", country_code="FR", region="Ile-de-France", city="Paris"), HOME,
                 duration=90, stored_at=NOW + timedelta(hours=1))  # offline replay, two days late
    db.website_logs.insert_one(late)
    result = run_rollups(db, now=NOW + timedelta(hours=2), tutorials=TUTORIALS)
    assert "2024-03-01" in result["days"]
    assert scalars(daily(db, D1)) == {
        **DAY1, "all_views": 11, "page_views": 9, "unique_visitors": 5, "new_visitors": 4, "first_time_views": 4,
        "anonymous_views": 5, "duration_samples": 8, "duration_total": 1790, "duration_avg": round(1790 / 8, 3),
    }
    found = dims(db, D1)
    assert found["browser"][("Opera",)] == 1
    assert found["country"][("France", "FR")] == 1
    assert found["duration"][("1-3m",)] == 2
    assert found["event"][("event.home",)] == 4
    assert snapshot(db, D2) == before[D2]
    assert snapshot(db, D3) == before[D3]
    # the watermark moved to the late event's updated_ts; the run counted the late event only (the
    # one inside the safety overlap, day 3's last, is known as counted), none of day 1's others, and
    # recounted one bucket: the late event's
    assert result["watermarks"]["website_logs"]["updated_ts"] == (NOW + timedelta(hours=1)).timestamp()
    assert result["events"] == 1 and result["buckets"] == 1 and result["days"] == ["2024-03-01"]


def test_a_batch_committed_after_the_run_that_passed_its_stamp_is_counted(db: Any) -> None:
    """Why the selection reaches back: a store worker stamps a batch, another run passes that
    stamp, and only then the batch commits. The next run finds it inside the overlap, and it is
    not among the page views counted already."""
    load(db)
    first = run_rollups(db, now=NOW, tutorials=TUTORIALS)
    stamp = first["watermarks"]["website_logs"]["updated_ts"] - 20  # before the watermark, inside the overlap
    late = event(D3, 10, "v9", ANON, True, CHROME_WIN, dict(country="France", country_code="FR", region=None,
                                                           city=None), HOME, duration=30)
    late["updated_ts"] = stamp
    db.website_logs.insert_one(late)
    result = run_rollups(db, now=NOW + timedelta(minutes=5), tutorials=TUTORIALS)
    assert result["events"] == 1 and result["days"] == [D3.isoformat()]
    assert scalars(daily(db, D3))["page_views"] == DAY3["page_views"] + 1
    assert run_rollups(db, now=NOW + timedelta(minutes=10), tutorials=TUTORIALS)["events"] == 0


def test_removed_keys_disappear(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    db.website_logs.delete_many({"datetime": {"$gte": datetime(2024, 3, 1, tzinfo=UTC),
                                              "$lt": datetime(2024, 3, 2, tzinfo=UTC)}, "browser_family": "Firefox"})
    rollup_day(db, D1, NOW)
    assert ("Firefox",) not in dims(db, D1)["browser"]
    assert daily(db, D1)["page_views"] == 6
    db.website_logs.delete_many({})
    db.exit_link_logs.delete_many({})
    assert rollup_day(db, D1, NOW) is None
    assert db.stats_daily.find_one({"_id": "2024-03-01"}) is None
    assert db.stats_buckets.count_documents({"day": "2024-03-01"}) == 0
    assert db.stats_hourly.count_documents({"day": "2024-03-01"}) == 0


def test_new_exit_links_are_picked_up(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    newer = {"_id": uuid.uuid4().hex, "exit_link": "https://www.python.org/", "path_info": "/",
             "page_view_id": "x", "datetime": datetime(2024, 3, 3, 12, tzinfo=UTC), "visited_by": ANON}
    replayed = {"_id": uuid.uuid4().hex, "exit_link": "https://github.com/x", "path_info": "/", "page_view_id": "y",
                "datetime": datetime(2024, 3, 1, 12, tzinfo=UTC), "visited_by": ANON,
                "stored_at": NOW + timedelta(hours=1)}
    db.exit_link_logs.insert_many([newer, replayed])
    result = run_rollups(db, now=NOW + timedelta(hours=2), tutorials=TUTORIALS)
    assert {"2024-03-01", "2024-03-03"} <= set(result["days"])
    assert daily(db, D3)["exit_clicks"] == 1
    assert dims(db, D3)["exit_link"] == {("https://www.python.org/",): 1}
    assert daily(db, D1)["exit_clicks"] == 4
    assert dims(db, D1)["exit_link"][("https://github.com/x",)] == 3
    assert daily(db, D2)["exit_clicks"] == 1


def test_lease_keeps_a_second_run_out(db: Any) -> None:
    load(db)
    assert acquire_lock(db, "other-beat")
    assert run_rollups(db, now=NOW)["skipped"] == "locked"
    assert db.stats_daily.count_documents({}) == 0
    release_lock(db, "other-beat")
    assert run_rollups(db, now=NOW)["skipped"] is None
    assert db.stats_watermarks.find_one({"_id": "lock"}) is None


def test_two_beats_at_once_give_the_same_numbers(db: Any) -> None:
    load(db)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def beat() -> None:
        try:
            results.append(run_rollups(db, now=NOW, tutorials=TUTORIALS))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert any(r["skipped"] is None for r in results)
    assert scalars(daily(db, D1)) == DAY1 and scalars(daily(db, D2)) == DAY2 and scalars(daily(db, D3)) == DAY3
    assert dims(db, D1) == DAY1_DIMS
    assert db.stats_visits.count_documents({}) == 9  # each visit once


def test_read_daily_reads_only_stats(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    db.website_logs.drop()
    db.exit_link_logs.drop()
    db.tutorial_progress_logs.drop()
    view = read_daily(db, D1 - timedelta(days=1), D3, limit=3)
    assert [d["day"] for d in view["days"]] == ["2024-02-29", "2024-03-01", "2024-03-02", "2024-03-03"]
    assert view["days"][0]["page_views"] == 0 and view["days"][0]["duration_avg"] is None
    assert {k: view["days"][1][k] for k in DAY1} == DAY1
    totals = view["totals"]
    assert totals["all_views"] == 20 and totals["page_views"] == 17 and totals["bot_views"] == 3
    assert totals["exit_clicks"] == 4 and totals["tutorial_views"] == 7
    assert totals["visitor_days"] == 4 + 3 + 2 and totals["user_days"] == 2 + 2 + 1
    assert totals["duration_samples"] == 12 and totals["duration_total"] == 1700 + 277 + 12
    assert totals["duration_avg"] == round(1989 / 12, 3)
    top = view["top"]
    assert top["browser"] == [{"key": "Chrome", "count": 8}, {"key": "Firefox", "count": 5},
                              {"key": "Mobile Safari", "count": 3}]
    assert top["country"] == [{"key": "United Kingdom", "count": 8, "country_code": "GB"},
                              {"key": "China", "count": 3, "country_code": "CN"},
                              {"key": "United States", "count": 3, "country_code": "US"}]
    assert top["exit_link"] == [{"key": "https://github.com/x", "count": 3},
                                {"key": "https://www.python.org/", "count": 1}]
    assert top["tutorial"][0] == {"key": "Getting-Started", "count": 3, "foss": "Python", "language": "English"}
    assert top["bot"] == [{"key": "Googlebot", "count": 2}, {"key": "bingbot", "count": 1}]
    assert view["duration"] == [{"bucket": "0-10s", "count": 2}, {"bucket": "10-30s", "count": 3},
                                {"bucket": "30-60s", "count": 2}, {"bucket": "1-3m", "count": 1},
                                {"bucket": "3-10m", "count": 2}, {"bucket": "10m+", "count": 2}]
    one = read_daily(db, "2024-03-02", "2024-03-02")
    assert {k: one["totals"][k] for k in ("page_views", "bot_views", "exit_clicks")} == {
        "page_views": 5, "bot_views": 1, "exit_clicks": 1}
    assert one["top"]["referrer"] == [{"key": "(direct)", "count": 4}, {"key": "duckduckgo.com", "count": 1}]
    tut = read_tutorials(db)
    assert tut["summary"]["completions"] == 4


def tutorial_rows(db: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(t["language"], t["tutorial"]): t for t in read_tutorials(db)["tutorials"]}


def test_tutorial_progress_snapshot(db: Any) -> None:
    load(db)
    summary = rollup_tutorials(db, TUTORIALS, NOW)
    assert summary == {
        "learners": 4, "records": 7, "completions": 4, "completion_rate": round(4 / 7, 4),
        "avg_minutes_watched": round(37 / 7, 2), "total_visits": 14, "avg_visits_per_user": 3.5,
        "rewatched_records": 4,
        "most_rewatched": [
            {"foss": "Python", "language": "English", "tutorial": "Getting-Started", "rewatchers": 1,
             "total_visits": 5},
            {"foss": "Python", "language": "Hindi", "tutorial": "Loops", "rewatchers": 1, "total_visits": 4},
            {"foss": "Python", "language": "English", "tutorial": "Functions", "rewatchers": 1, "total_visits": 2},
            {"foss": "Python", "language": "Hindi", "tutorial": "Getting-Started", "rewatchers": 1,
             "total_visits": 2},
        ],
    }
    rows = tutorial_rows(db)
    assert set(rows) == {("English", "Getting-Started"), ("English", "Loops"), ("English", "Functions"),
                         ("Hindi", "Loops"), ("Hindi", "Getting-Started")}
    gs = rows[("English", "Getting-Started")]
    assert {k: gs[k] for k in ("learners", "completions", "completions_manual", "completion_rate",
                               "avg_minutes_watched", "total_minutes", "total_visits", "avg_visits",
                               "rewatchers")} == {
        "learners": 3, "completions": 2, "completions_manual": 0, "completion_rate": 0.6667,
        "avg_minutes_watched": 6.33, "total_minutes": 10, "total_visits": 5, "avg_visits": 1.67, "rewatchers": 1}
    loops = rows[("English", "Loops")]
    assert (loops["completions"], loops["completions_manual"], loops["completion_rate"]) == (1, 1, 1.0)
    assert rows[("Hindi", "Getting-Started")]["avg_minutes_watched"] == 0.0  # no minutes_watched field
    assert read_tutorials(db)["tutorials"][0]["tutorial"] == "Getting-Started"  # most learners first
    courses = {c["language"]: c for c in read_tutorials(db)["courses"]}
    assert courses["English"]["distribution"] == {"0-25": 1, "25-50": 1, "50-75": 1, "75-100": 0}
    assert (courses["English"]["learners"], courses["English"]["tutorials_in_course"]) == (3, 4)
    assert courses["Hindi"]["distribution"] == {"0-25": 1, "25-50": 1, "50-75": 0, "75-100": 0}


@pytest.mark.parametrize(("course", "english", "hindi", "full"), [
    # alice 2 done, bob 1, carol 0 (English); bob 1, dave 0 (Hindi)
    (["Getting-Started", "Loops"], {"0-25": 1, "25-50": 0, "50-75": 1, "75-100": 1},
     {"0-25": 1, "25-50": 0, "50-75": 1, "75-100": 0}, 1),
    (None, {"0-25": 1, "25-50": 1, "50-75": 1, "75-100": 0},  # the titles seen: 3 tutorials
     {"0-25": 1, "25-50": 1, "50-75": 0, "75-100": 0}, 0),
])
def test_course_progress_distribution(db: Any, course: list[str] | None, english: dict, hindi: dict,
                                      full: int) -> None:
    load(db)
    rollup_tutorials(db, {"Python": course} if course else None, NOW)
    courses = {c["language"]: c for c in read_tutorials(db)["courses"]}
    assert courses["English"]["distribution"] == english
    assert courses["Hindi"]["distribution"] == hindi
    assert courses["English"]["completed_course"] == full


def test_tutorial_snapshot_replaces_old_documents(db: Any) -> None:
    load(db)
    rollup_tutorials(db, TUTORIALS, NOW)
    db.tutorial_progress_logs.delete_many({"language": "Hindi"})
    summary = rollup_tutorials(db, TUTORIALS, NOW)
    assert summary["records"] == 5 and summary["learners"] == 3
    assert {c["language"] for c in read_tutorials(db)["courses"]} == {"English"}
    assert all(t["language"] == "English" for t in read_tutorials(db)["tutorials"])


def test_empty_database(db: Any) -> None:
    result = run_rollups(db, now=NOW)
    assert result["days"] == [] and result["skipped"] is None
    view = read_daily(db, D1, D1)
    assert view["totals"]["page_views"] == 0 and view["top"]["browser"] == []
    assert read_tutorials(db)["summary"]["records"] == 0


def test_helpers() -> None:
    assert rollups.referrer_host("") == "(direct)"
    assert rollups.referrer_host(None) == "(direct)"
    assert rollups.referrer_host("https://Example.org:8080/a?b") == "example.org"
    assert rollups.referrer_host("not a url") == "(other)"
    assert [rollups.duration_label(s) for s in (0, 9.9, 10, 29, 30, 59, 60, 179, 180, 599, 600, 10_000)] == [
        "0-10s", "0-10s", "10-30s", "10-30s", "30-60s", "30-60s", "1-3m", "1-3m", "3-10m", "3-10m", "10m+", "10m+"]


def test_a_page_view_changed_after_it_was_stored_is_recounted(db: Any) -> None:
    """The tracker's visit_duration reaches an old page view later; updated_ts marks it."""
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    target = db.website_logs.find_one({"visit_duration": 600})
    day = target["datetime"].date()
    before = scalars(daily(db, day))
    visit = db.stats_visits.find_one({"vkey": "v4"})
    db.website_logs.update_one({"_id": target["_id"]},
                               {"$set": {"visit_duration": 700, "updated_ts": (NOW + timedelta(hours=1)).timestamp()}})
    result = run_rollups(db, now=NOW + timedelta(hours=2), tutorials=TUTORIALS)
    assert day.isoformat() in result["days"]
    assert scalars(daily(db, day))["duration_total"] == before["duration_total"] + 100
    assert result["events"] == 1 and result["visits"] == 1  # the changed page view, its visit
    assert db.stats_visits.find_one({"vkey": "v4"})["duration"] == visit["duration"] + 100


def test_lease_is_renewed_and_an_expired_one_taken(db: Any) -> None:
    assert acquire_lock(db, "a", ttl=60)
    assert acquire_lock(db, "a", ttl=60)  # renew our own
    assert not acquire_lock(db, "b", ttl=60)
    db.stats_watermarks.update_one({"_id": "lock"}, {"$set": {"expires": 0}})  # a beat that died
    assert acquire_lock(db, "b", ttl=60)
    assert not acquire_lock(db, "a", ttl=60)
    release_lock(db, "a")  # not the holder: changes nothing
    assert db.stats_watermarks.find_one({"_id": "lock"})["owner"] == "b"


def test_refresh_repairs_events_stored_without_updated_ts(db: Any) -> None:
    load(db)
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    imported = event(D2, 7, "v9", ANON, True, CHROME_WIN, GB, HOME, duration=20)
    del imported["updated_ts"]
    db.website_logs.insert_one(imported)
    run_rollups(db, now=NOW + timedelta(hours=1), tutorials=TUTORIALS)
    assert daily(db, D2)["page_views"] == 5  # not selected: no updated_ts
    result = refresh_days(db, [D2], NOW)
    assert result["days"] == ["2024-03-02"]
    assert daily(db, D2)["page_views"] == 6 and daily(db, D2)["unique_visitors"] == 4
    assert daily(db, D2)["visits"] == 4


def test_the_first_run_counts_page_views_without_updated_ts(db: Any) -> None:
    """Imported page views (no updated_ts) are seen by the first run, as retention assumes."""
    load(db)
    db.website_logs.update_many({"datetime": {"$lt": datetime(2024, 3, 2, tzinfo=UTC)}}, {"$unset": {"updated_ts": ""}})
    assert db.website_logs.count_documents({"updated_ts": None}) == 10
    run_rollups(db, now=NOW, tutorials=TUTORIALS)
    assert scalars(daily(db, D1)) == DAY1 and scalars(daily(db, D2)) == DAY2
