"""The dashboard in a real headless Chromium against the live demo site (gunicorn)
and nx-27017 holding a generated, rolled-up data set: every chart draws, nothing
logs an error, the visits, paths and campaigns panels show the rollups' numbers,
the live panel follows new page views, the range picker, the paths filter and
exports work, non-staff users get 403.

EVENTLOG_DOCS_SCREENSHOT=docs/dashboard.png also writes the screenshot there
(EVENTLOG_DASHBOARD_EVENTS sets the data set's size, default 1500).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from deploy.stack import ROOT, free_port, nx_proc, wait_for_port
from loadtest.dashboard_bench import generate_events, generate_exit_links, generate_progress
from pipeline import rollups
from pipeline.rollups import run_rollups
from tests.helpers.journeys import as_journeys
from tests.helpers.pipeline import Pipeline, purge_queues

pytestmark = pytest.mark.integration

DASHBOARD = "/eventlog/dashboard/"
CHARTS = {"traffic", "pages", "events", "map", "browsers", "os", "device_types", "referrers", "exit_links",
          "durations", "tutorial_views", "funnel", "courses", "rewatched", "live", "path_steps"}
DAYS = 14


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private nx-27017 with the data set rolled up (the screenshot shows only it)."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("nx-dashboard-browser")
    proc = nx_proc(port, data_dir, data_dir / "stdout.log").start()
    try:
        wait_for_port("127.0.0.1", port, 30, "nx-27017")
        url = f"mongodb://127.0.0.1:{port}"
        client = pymongo.MongoClient(url, tz_aware=True)
        now = datetime.now(UTC)
        events = as_journeys(generate_events(int(os.environ.get("EVENTLOG_DASHBOARD_EVENTS", "1500")), DAYS, end=now),
                             end=now)
        client.logs.website_logs.insert_many(events)
        client.logs.exit_link_logs.insert_many(generate_exit_links(events))
        client.logs.tutorial_progress_logs.insert_many(generate_progress(now=now))
        client.logs.website_logs.create_index("datetime")
        client.logs.website_logs.create_index("stored_at")
        run_rollups(client.logs)
        client.close()
        yield url
    finally:
        proc.stop()


@pytest.fixture
def db(store: str) -> Iterator[pymongo.database.Database]:
    client = pymongo.MongoClient(store, tz_aware=True)
    yield client.logs
    client.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, store: str, redis_url: str,
         demo_var_dir: Path) -> Iterator[Pipeline]:
    purge_queues(redis_url)
    pipeline = Pipeline(tmp_path_factory.mktemp("dashboard"), redis_url, store, "logs", demo_var_dir)
    try:
        pipeline.web(workers=2)
        yield pipeline
    finally:
        pipeline.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield ctx
    ctx.close()


def log_in(page: Page, site: Pipeline, username: str) -> None:
    page.goto(site.url("/accounts/login/"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo-password")
    page.click("main form button")
    page.wait_for_url(site.url("/"))


def watch_errors(page: Page) -> list[str]:
    """Console errors, uncaught exceptions and failed requests of the page from now on."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    # A navigation cancels the health poll in flight (net::ERR_ABORTED): not an error.
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url} {r.failure}")
            if r.failure != "net::ERR_ABORTED" else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return errors


def open_dashboard(page: Page, site: Pipeline, query: str = "") -> None:
    page.goto(site.url(DASHBOARD + query))
    page.wait_for_function("window.eventlogDashboard && window.eventlogDashboard.ready"
                           " && window.eventlogDashboard.live.updates > 0", timeout=20_000)


def chart_states(page: Page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('canvas[data-chart]')]
        .map(c => [c.dataset.chart, c.dataset.rendered || 'missing']))""")


def painted_pixels(page: Page, chart: str) -> int:
    """Non-transparent pixels on a chart's canvas: it really drew something."""
    return page.evaluate("""(name) => {
        const c = document.querySelector(`canvas[data-chart="${name}"]`);
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
        return n;
    }""", chart)


def add_live_visitors(db: Any) -> None:
    """A few people on the site in the last minutes, for the screenshot's live panel."""
    now = datetime.now(UTC)
    pages = ["/", "/tutorial-search/", "/watch/BASH/Loops-in-BASH/English/", "/watch/BASH/Loops-in-BASH/English/",
             "/watch/Python/Saving-plots/English/", "/tutorial-search/", "/watch/BASH/Loops-in-BASH/English/"]
    db.website_logs.insert_many([
        {"_id": uuid.uuid4().hex, "datetime": now - timedelta(seconds=25 * i + 5), "path_info": path,
         "visitor_id": f"screenshot-{i % 5}", "is_bot": False, "visited_by": "AnonymousUser", "page_title": "",
         "updated_ts": now.timestamp()}
        for i, path in enumerate(pages * 3)])


def test_staff_sees_every_chart_render_without_errors(site: Pipeline, context: BrowserContext, db: Any,
                                                      tmp_path: Path) -> None:
    page = context.new_page()
    log_in(page, site, "admin")
    errors = watch_errors(page)
    open_dashboard(page, site)
    assert chart_states(page) == dict.fromkeys(CHARTS, "1")
    for chart in CHARTS:
        assert painted_pixels(page, chart) > 500, chart
    assert page.evaluate("window.eventlogDashboard.errors") == []
    # Geography: a flag per located country, drawn from the vendored stylesheet.
    flag = page.locator('table[data-table="countries"] span[class^="flag:"]').first
    assert flag.evaluate("e => getComputedStyle(e).backgroundImage").startswith('url("data:image/svg+xml')
    # Operations: the health panel polled health/ (broker and store answer).
    page.wait_for_selector('#health [data-h="status"] .pill.ok', timeout=15_000)
    assert page.locator('#health [data-h="broker"]').inner_text() == "up"
    # Another course in the funnel redraws it.
    page.select_option("#funnel-course", index=1)
    assert chart_states(page)["funnel"] == "1"
    page.wait_for_timeout(300)
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    docs = os.environ.get("EVENTLOG_DOCS_SCREENSHOT")
    if docs:  # the README's picture: overview, live, visits and paths of the data set's days
        add_live_visitors(db)
        page.set_viewport_size({"width": 1400, "height": 2900})
        today = datetime.now(UTC).date()
        open_dashboard(page, site, f"?start={today - timedelta(days=DAYS - 1)}&end={today}")
        page.wait_for_timeout(500)
        page.screenshot(path=str(ROOT / docs), full_page=False)
        page.locator("#card-paths").screenshot(path=str(tmp_path / "paths.png"))
    assert errors == []


def test_the_range_picker_and_presets(site: Pipeline, context: BrowserContext) -> None:
    page = context.new_page()
    log_in(page, site, "admin")
    errors = watch_errors(page)
    open_dashboard(page, site)
    page.fill("#start", "2001-01-01")
    page.fill("#end", "2001-01-31")
    page.click("form.range button")
    page.wait_for_url("**start=2001-01-01&end=2001-01-31")
    page.wait_for_function("window.eventlogDashboard && window.eventlogDashboard.ready")
    states = chart_states(page)
    assert states["traffic"] == "empty" and states["pages"] == "empty"  # drawn, with a "no data" note
    assert "1 Jan 2001 – 31 Jan 2001" in page.locator("h2#overview").inner_text()
    page.click(".presets a:text('7d')")
    page.wait_for_function("window.eventlogDashboard && window.eventlogDashboard.ready")
    today = datetime.now(UTC).date()
    assert f"start={today - timedelta(days=6)}" in page.url
    assert page.locator(".presets a.on").inner_text() == "7d"
    assert chart_states(page)["traffic"] == "1"
    assert errors == []


def test_export_links_download_the_tables(site: Pipeline, context: BrowserContext) -> None:
    page = context.new_page()
    log_in(page, site, "admin")
    open_dashboard(page, site)
    csv_link = page.locator("#card-countries .exports a", has_text="CSV").get_attribute("href")
    answer = page.request.get(site.url(csv_link))
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.text().splitlines()[0] == "country,count,share,country_code"
    json_link = page.locator("#card-pages .exports a", has_text="JSON").get_attribute("href")
    assert page.request.get(site.url(json_link)).json()["table"] == "pages"


def test_non_staff_users_get_403_and_anonymous_users_the_login_page(site: Pipeline, browser: Browser) -> None:
    learner = browser.new_context()
    anonymous = browser.new_context()
    try:
        page = learner.new_page()
        log_in(page, site, "learner1")
        assert page.goto(site.url(DASHBOARD)).status == 403
        assert page.goto(site.url(DASHBOARD + "data.json")).status == 403
        page = anonymous.new_page()
        page.goto(site.url(DASHBOARD))
        assert page.url.startswith(site.url("/accounts/login/?next=/eventlog/dashboard/"))
    finally:
        learner.close()
        anonymous.close()


def card_text(page: Page, key: str) -> str:
    return page.locator(f'.kpis [data-kpi="{key}"]').inner_text()


def column(page: Page, table: str, index: int) -> list[str]:
    return page.locator(f'table[data-table="{table}"] tbody tr td:nth-child({index})').all_inner_texts()


def test_visits_paths_and_campaigns_show_the_rollups_numbers(site: Pipeline, db: Any,
                                                             context: BrowserContext) -> None:
    today = datetime.now(UTC).date()
    first = today - timedelta(days=DAYS - 1)
    summary = rollups.read_summary(db, first, today)
    assert summary["visits"] > 50 and summary["bounces"] < summary["visits"]  # the data set has journeys
    page = context.new_page()
    log_in(page, site, "admin")
    errors = watch_errors(page)
    open_dashboard(page, site, f"?start={first}&end={today}")
    assert card_text(page, "visits") == f"{summary['visits']:,}"
    assert card_text(page, "unique_visitors") == f"{summary['unique_visitors']:,}"
    assert card_text(page, "bounce_rate") == f"{100 * summary['bounce_rate']:.1f} %"
    assert card_text(page, "pages_per_visit") == f"{summary['pages_per_visit']:,.1f}"
    entries = rollups.read_entry_pages(db, first, today, limit=10)
    assert column(page, "entry_pages", 1) == [r["path"] for r in entries]
    assert column(page, "entry_pages", 2) == [f"{r['visits']:,}" for r in entries]
    campaigns = rollups.read_campaigns(db, first, today)
    assert campaigns and column(page, "campaigns", 1) == [r["source"] for r in campaigns][:10]
    # User paths: the ranked flows, as read_paths ranks them, and the funnel of steps.
    paths = rollups.read_paths(db, first, today, limit=20)
    flows = page.locator('table[data-table="paths"] tbody tr')
    assert flows.count() == min(10, len(paths["flows"])) > 3  # the top 10 (the exports have 20)
    top = flows.first.locator(".step").all_inner_texts()
    assert top == [step["path"] for step in paths["flows"][0]["steps"]]
    assert column(page, "paths", 3)[0] == f"{paths['flows'][0]['visits']:,}"
    assert column(page, "path_steps", 2) == [f"{s['visits']:,}" for s in paths["steps"]]
    # The filter: visits that entered on one page only.
    entry = entries[0]["path"]
    page.select_option("#paths-entry", entry)  # submits the form on change
    page.wait_for_url("**entry=*")
    page.wait_for_function("window.eventlogDashboard && window.eventlogDashboard.ready")
    filtered = rollups.read_paths(db, first, today, entry_path=entry, limit=20)
    firsts = page.locator('table[data-table="paths"] tbody tr .step.entry').all_inner_texts()
    assert firsts and set(firsts) == {entry} and len(firsts) == min(10, len(filtered["flows"]))
    assert column(page, "path_steps", 2)[0] == f"{filtered['visits']:,}"
    csv_link = page.locator("#card-paths .exports a", has_text="CSV").get_attribute("href")
    rows = page.request.get(site.url(csv_link)).text().splitlines()
    assert rows[0].startswith("step_1,step_2,step_3,step_4,visits,share,then")
    assert len(rows) == 1 + len(filtered["flows"])
    assert errors == []


def test_the_live_panel_follows_new_page_views(site: Pipeline, db: Any, context: BrowserContext) -> None:
    page = context.new_page()
    log_in(page, site, "admin")
    errors = watch_errors(page)
    open_dashboard(page, site)
    path = "/live-now/"
    assert path not in column(page, "live-pages", 1)
    updates = page.evaluate("window.eventlogDashboard.live.updates")
    now = datetime.now(UTC)
    db.website_logs.insert_many([
        {"_id": uuid.uuid4().hex, "datetime": now - timedelta(seconds=i), "path_info": path, "page_title": "Live",
         "visitor_id": f"live-{uuid.uuid4().hex[:6]}", "is_bot": False, "visited_by": "AnonymousUser",
         "updated_ts": now.timestamp()}
        for i in range(3)])
    # The next poll (every 5 s) shows them: the page is not reloaded.
    page.wait_for_function("""(path) => [...document.querySelectorAll('table[data-table="live-pages"] td')]
        .some(td => td.textContent === path)""", arg=path, timeout=15_000)
    assert page.evaluate("window.eventlogDashboard.live.updates") > updates
    row = page.locator('table[data-table="live-pages"] tr', has_text=path)
    assert row.locator("td").nth(1).inner_text() == "3"
    assert int(page.locator('[data-live="visitors-5"]').inner_text().replace(",", "")) >= 3
    assert painted_pixels(page, "live") > 500
    assert errors == []
