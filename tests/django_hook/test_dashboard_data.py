"""dashboard/ with data: its figures equal the raw logs', it reads only the rollups,
exports hold the same rows, a new rollup run shows up; visits, entry and exit pages,
user paths and campaigns equal what the raw page views make by hand; the live view. A module nx-27017 (or
EVENTLOG_MONGO_URL) holds a generated data set rolled up by pipeline.rollups."""

from __future__ import annotations

import csv
import io
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pymongo
import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from deploy.stack import free_port, nx_proc, wait_for_port
from loadtest.dashboard_bench import generate_events, generate_exit_links, generate_progress
from pipeline.rollups import VISIT_GAP, referrer_host, run_rollups
from tests.helpers.journeys import as_journeys

DAYS = 5
NOW = datetime.now(UTC)
TODAY = NOW.date()
FIRST = TODAY - timedelta(days=DAYS - 1)
RANGE = f"start={FIRST}&end={TODAY}"
COLLECTIONS = ("website_logs", "exit_link_logs", "tutorial_progress_logs", "stats_daily", "stats_daily_dim",
               "stats_tutorials", "stats_watermarks")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    external = os.environ.get("EVENTLOG_MONGO_URL")
    if external:
        name = f"eventlog_dash_{uuid.uuid4().hex[:8]}"
        yield external, name
        pymongo.MongoClient(external).drop_database(name)
        return
    port = free_port()
    data_dir: Path = tmp_path_factory.mktemp("nx-dashboard")
    proc = nx_proc(port, data_dir, data_dir / "stdout.log").start()
    try:
        wait_for_port("127.0.0.1", port, 30, "nx-27017")
        yield f"mongodb://127.0.0.1:{port}", "logs"
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def raw(store: tuple[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The data set, stored and rolled up once for the module."""
    url, name = store
    db = pymongo.MongoClient(url, tz_aware=True)[name]
    for coll in COLLECTIONS:
        db[coll].delete_many({})
    events = as_journeys(generate_events(400, DAYS, seed=11, end=NOW), end=NOW)  # visits of a few pages
    data = {"website_logs": events, "exit_link_logs": generate_exit_links(events, seed=12),
            "tutorial_progress_logs": generate_progress(seed=13, now=NOW)}
    for coll, docs in data.items():
        db[coll].insert_many([dict(d) for d in docs])
    db.website_logs.create_index("datetime")
    db.website_logs.create_index("stored_at")
    assert run_rollups(db, tutorials=None)["skipped"] is None
    return data


@pytest.fixture
def db(store: tuple[str, str]) -> Any:
    url, name = store
    return pymongo.MongoClient(url, tz_aware=True)[name]


@pytest.fixture
def staff(store: tuple[str, str], raw: dict) -> Iterator[Client]:  # noqa: ARG001 - raw: the data must be there
    url, name = store
    with override_settings(EVENTLOG_MONGO_URL=url, EVENTLOG_MONGO_DB=name):
        client = Client(HTTP_HOST="127.0.0.1")
        account, _ = get_user_model().objects.get_or_create(username="dash-data-admin", defaults={"is_staff": True})
        client.force_login(account)
        yield client


def humans(raw: dict) -> list[dict[str, Any]]:
    return [e for e in raw["website_logs"] if not e["is_bot"]]


def test_figures_equal_the_raw_logs(staff: Client, raw: dict) -> None:
    figures = staff.get(f"/eventlog/dashboard/data.json?{RANGE}&limit=100").json()
    people = humans(raw)
    assert figures["start"] == FIRST.isoformat() and figures["end"] == TODAY.isoformat()
    assert figures["kpis"]["page_views"] == len(people)
    assert figures["totals"]["bot_views"] == len(raw["website_logs"]) - len(people)
    assert figures["kpis"]["exit_clicks"] == len(raw["exit_link_logs"])
    assert len(figures["tables"]["traffic"]) == DAYS

    countries = Counter(e["country"] for e in people)
    assert {r["country"]: r["count"] for r in figures["tables"]["countries"]} == dict(countries)
    browsers = Counter(e["browser_family"] for e in people)
    assert {r["browser"]: r["count"] for r in figures["tables"]["browsers"]} == dict(browsers)
    # Referrer hosts; navigation inside the site (ALLOWED_HOSTS) is one "(this site)" row.
    referrers = Counter(referrer_host(e["referrer"]) for e in people)
    referrers["(this site)"] = referrers.pop("127.0.0.1")
    assert {r["referrer"]: r["count"] for r in figures["tables"]["referrers"]} == dict(referrers)
    assert [r["count"] for r in figures["tables"]["referrers"]] == sorted(referrers.values(), reverse=True)
    india = next(r for r in figures["tables"]["countries"] if r["country"] == "India")
    assert india["country_code"] == "IN" and india["share"] == pytest.approx(countries["India"] / len(people))
    watched = Counter(e["view_kwargs"]["tutorial"] for e in people if e["event_name"] == "event.video.watch")
    assert sum(r["views"] for r in figures["tables"]["tutorial_views"]) == sum(watched.values())
    timed = [e["visit_duration"] for e in people if "visit_duration" in e]
    assert sum(r["count"] for r in figures["tables"]["durations"]) == len(timed)
    learners = {p["username"] for p in raw["tutorial_progress_logs"]}
    assert figures["kpis"]["learners"] == len(learners)
    assert sum(f["learners"] for f in figures["funnels"]) == sum(c["learners"] for c in figures["tables"]["courses"])


def test_the_page_renders_every_panel(staff: Client, raw: dict) -> None:
    page = staff.get(f"/eventlog/dashboard/?{RANGE}")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{len(humans(raw)):,}" in html
    for chart in ("traffic", "pages", "map", "browsers", "os", "device_types", "referrers", "exit_links",
                  "durations", "tutorial_views", "funnel", "courses", "rewatched", "events", "live", "path_steps"):
        assert f'data-chart="{chart}"' in html, chart
    assert 'class="flag:IN fl"' in html
    assert 'id="eventlog-dashboard-data"' in html
    for table in ("entry_pages", "exit_pages", "campaigns", "paths", "path_steps", "live-pages"):
        assert f'data-table="{table}"' in html, table
    assert 'data-url="/eventlog/dashboard/live.json"' in html
    assert "eventlog/vendor/chartjs/chart.umd.min.js" in html and "cdn" not in html.lower()
    assert html.count("/eventlog/dashboard/export/") >= 2 * 15  # a CSV and a JSON link per table


def test_exports_hold_the_tables(staff: Client, raw: dict) -> None:
    figures = staff.get(f"/eventlog/dashboard/data.json?{RANGE}&limit=100").json()
    answer = staff.get(f"/eventlog/dashboard/export/countries.csv?{RANGE}")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    assert f'filename="eventlog-countries-{FIRST}-{TODAY}.csv"' in answer["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert rows[0].keys() == {"country", "count", "share", "country_code"}
    assert sum(int(r["count"]) for r in rows) == len(humans(raw))
    exported = staff.get(f"/eventlog/dashboard/export/pages.json?{RANGE}").json()
    assert exported["table"] == "pages" and exported["columns"] == ["path", "count", "share"]
    assert exported["rows"] == figures["tables"]["pages"]
    traffic = staff.get(f"/eventlog/dashboard/export/traffic.csv?{RANGE}").content.decode().splitlines()
    assert traffic[0].startswith("day,page_views,unique_visitors") and len(traffic) == 1 + DAYS


def test_a_range_without_data_is_all_zeros(staff: Client) -> None:
    figures = staff.get("/eventlog/dashboard/data.json?start=2001-01-01&end=2001-01-07").json()
    assert figures["kpis"]["page_views"] == 0 and len(figures["tables"]["traffic"]) == 7
    assert figures["tables"]["countries"] == [] and figures["tables"]["pages"] == []
    page = staff.get("/eventlog/dashboard/?start=2001-01-01&end=2001-01-07")
    assert page.status_code == 200 and b"No data for this range" in page.content


def test_the_dashboard_reads_only_the_rollups(staff: Client, db: Any, raw: dict) -> None:
    before = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()
    from django.core.cache import cache

    cache.clear()
    try:
        for coll in ("website_logs", "exit_link_logs", "tutorial_progress_logs"):
            db[coll].delete_many({})
        after = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()
    finally:
        for coll in ("website_logs", "exit_link_logs", "tutorial_progress_logs"):
            db[coll].insert_many([dict(d) for d in raw[coll]])
    assert after["kpis"] == before["kpis"] and after["tables"] == before["tables"]


def test_a_new_rollup_run_shows_up(staff: Client, db: Any, raw: dict) -> None:
    before = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()["kpis"]["page_views"]
    now = datetime.now(UTC)  # stored now: stored_at and updated_ts as the store writes them
    late = [dict(e, _id=uuid.uuid4().hex, is_bot=False, stored_at=now, updated_ts=now.timestamp())
            for e in generate_events(7, 1, seed=99, end=now)]
    db.website_logs.insert_many(late)
    raw["website_logs"].extend(late)
    run_rollups(db)
    after = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()
    assert after["kpis"]["page_views"] == before + 7
    assert after["rollups_updated_at"]


def test_course_order_comes_from_the_catalogue(staff: Client) -> None:
    from demo.catalogue import CATALOGUE

    figures = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()
    funnel = next(f for f in figures["funnels"] if f["foss"] == "BASH" and f["language"] == "English")
    assert [s["tutorial"] for s in funnel["steps"]] == CATALOGUE["BASH"]["tutorials"]
    assert all(s["completions"] <= s["learners"] for s in funnel["steps"])


def test_first_day_is_included(staff: Client, raw: dict) -> None:
    one_day = staff.get(f"/eventlog/dashboard/data.json?start={FIRST}&end={FIRST}").json()
    expected = sum(1 for e in humans(raw) if e["datetime"].date() == FIRST)
    assert one_day["kpis"]["page_views"] == expected
    assert date.fromisoformat(one_day["tables"]["traffic"][0]["day"]) == FIRST


def test_the_live_view_shows_who_is_on_the_site_now(staff: Client, db: Any) -> None:
    """live.json counts the newest page views (pipeline.live); stored a minute ago, they are in it at once,
    rollups or not."""
    page = f"/live-test/{uuid.uuid4().hex[:8]}/"
    now = datetime.now(UTC)
    fresh = [{"_id": uuid.uuid4().hex, "datetime": now - timedelta(seconds=60 + i), "path_info": page,
              "visitor_id": f"live-{i}", "is_bot": False, "visited_by": "AnonymousUser", "page_title": "Live",
              "updated_ts": (now - timedelta(seconds=50)).timestamp()}  # stored just after, as the store stamps
             for i in range(3)]
    fresh.append({**fresh[0], "_id": uuid.uuid4().hex, "datetime": now - timedelta(minutes=20), "path_info": "/",
                  "updated_ts": (now - timedelta(minutes=20)).timestamp()})
    db.website_logs.insert_many(fresh)
    try:
        answer = staff.get("/eventlog/dashboard/live.json")
        assert answer.status_code == 200 and answer["Cache-Control"] == "no-store"
        after = answer.json()
    finally:
        db.website_logs.delete_many({"_id": {"$in": [d["_id"] for d in fresh]}})
    assert [w["minutes"] for w in after["windows"]] == [5, 30]
    assert {"path": page, "title": "Live", "visitors": 3} in after["pages"]
    five, thirty = after["windows"]  # the data set's own newest events may be in them too
    assert five["page_views"] >= 3 and five["visitors"] >= 3 and thirty["page_views"] >= 4


def visits_by_hand(raw: dict) -> list[list[dict[str, Any]]]:
    """The people's visits of the data set: a visitor's page views, split where they pause over VISIT_GAP."""
    by_visitor: dict[str, list[dict[str, Any]]] = {}
    for event in humans(raw):
        if event.get("visitor_id"):
            by_visitor.setdefault(event["visitor_id"], []).append(event)
    visits = []
    for views in by_visitor.values():
        views.sort(key=lambda e: (e["datetime"], e["_id"]))
        current = [views[0]]
        for event in views[1:]:
            if event["datetime"] - current[-1]["datetime"] > VISIT_GAP:
                visits.append(current)
                current = []
            current.append(event)
        visits.append(current)
    return visits


def test_visits_and_bounces_equal_the_raw_page_views(staff: Client, raw: dict) -> None:
    figures = staff.get(f"/eventlog/dashboard/data.json?{RANGE}&limit=100").json()
    visits = visits_by_hand(raw)
    kpis = figures["kpis"]
    assert kpis["visits"] == len(visits) > 50
    bounces = sum(1 for v in visits if len(v) == 1)
    assert kpis["bounce_rate"] == pytest.approx(bounces / len(visits), abs=1e-4)
    assert kpis["pages_per_visit"] == pytest.approx(sum(len(v) for v in visits) / len(visits), abs=0.01)
    assert kpis["unique_visitors"] == len({e["visitor_id"] for e in humans(raw)})
    assert kpis["visit_duration_avg"] is not None and kpis["visit_duration_avg"] > 0
    entries = Counter(v[0]["path_info"] for v in visits)
    assert {r["path"]: r["visits"] for r in figures["tables"]["entry_pages"]} == dict(entries)
    exits = Counter(v[-1]["path_info"] for v in visits)
    assert {r["path"]: r["visits"] for r in figures["tables"]["exit_pages"]} == dict(exits)
    assert sum(r["visits"] for r in figures["tables"]["traffic"]) == len(visits)


def test_campaigns_are_the_landing_pages_utm(staff: Client, raw: dict) -> None:
    rows = staff.get(f"/eventlog/dashboard/data.json?{RANGE}&limit=100").json()["tables"]["campaigns"]
    landed = Counter((v[0].get("utm_source"), v[0].get("utm_medium"), v[0].get("utm_campaign"))
                     for v in visits_by_hand(raw) if v[0].get("utm_source"))
    assert landed and {(r["source"], r["medium"], r["campaign"]): r["visits"] for r in rows} == dict(landed)
    csv_rows = list(csv.DictReader(io.StringIO(staff.get(f"/eventlog/dashboard/export/campaigns.csv?{RANGE}")
                                               .content.decode())))
    assert sum(int(r["visits"]) for r in csv_rows) == sum(landed.values())


def flows_by_hand(visits: list[list[dict[str, Any]]]) -> Counter:
    """(path of the first 4 page views, whether the visit ended there) -> visits."""
    return Counter((tuple(e["path_info"] for e in v[:4]), len(v) <= 4) for v in visits)


def entry_steps(html: str) -> list[str]:
    """The entry page of each flow in the page's paths table."""
    return [unescape(p) for p in re.findall(r'<span class="step entry" title="([^"]*)"', html)]


def test_user_paths_rank_the_flows_of_the_raw_visits(staff: Client, raw: dict) -> None:
    visits = visits_by_hand(raw)
    figures = staff.get(f"/eventlog/dashboard/data.json?{RANGE}").json()
    rows = figures["tables"]["paths"]
    by_hand = flows_by_hand(visits)
    assert len(rows) == min(20, len(by_hand)) > 3
    for row in rows:  # every flow shown, with its count; most common first
        assert by_hand[(tuple(row["flow"]), row["then"] == "left the site")] == row["visits"]
    assert [r["visits"] for r in rows] == sorted(by_hand.values(), reverse=True)[:len(rows)]
    steps = figures["paths"]["steps"]
    assert [s["visits"] for s in steps] == [sum(1 for v in visits if len(v) >= k) for k in range(1, 5)]
    assert steps[0]["dropped"] == sum(1 for v in visits if len(v) == 1)
    html = staff.get(f"/eventlog/dashboard/?{RANGE}").content.decode()
    assert 'data-chart="path_steps"' in html
    assert entry_steps(html) == [r["step_1"] for r in rows[:10]]  # the page shows the top 10


def test_the_paths_filter_keeps_one_entry_page(staff: Client, raw: dict) -> None:
    entry = "/tutorial-search/"
    visits = [v for v in visits_by_hand(raw) if v[0]["path_info"] == entry]
    html = staff.get(f"/eventlog/dashboard/?{RANGE}&entry={entry}").content.decode()
    exported = staff.get(f"/eventlog/dashboard/export/paths.json?{RANGE}&entry={entry}").json()["rows"]
    assert exported and {r["step_1"] for r in exported} == {entry}
    assert entry_steps(html) == [entry] * min(10, len(exported))
    assert f"{len(visits)} visits, filtered" in html
    assert f'<option value="{entry}" selected>' in html
    watched = sum(1 for v in visits_by_hand(raw) if v[0]["event_name"] == "event.video.watch")
    html = staff.get(f"/eventlog/dashboard/?{RANGE}&event=event.video.watch").content.decode()
    assert f"{watched} visits, filtered" in html
