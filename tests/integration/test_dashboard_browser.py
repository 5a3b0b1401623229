"""The dashboard in a real headless Chromium against the live demo site (gunicorn)
and nx-27017 holding a generated, rolled-up data set: every chart draws, nothing
logs an error, the range picker and exports work, non-staff users get 403.

EVENTLOG_DOCS_SCREENSHOT=docs/dashboard.png also writes the screenshot there
(EVENTLOG_DASHBOARD_EVENTS sets the data set's size, default 1500).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymongo
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from deploy.stack import ROOT, free_port, nx_proc, wait_for_port
from loadtest.dashboard_bench import generate_events, generate_exit_links, generate_progress
from pipeline.rollups import run_rollups
from tests.helpers.pipeline import Pipeline, purge_queues

pytestmark = pytest.mark.integration

DASHBOARD = "/eventlog/dashboard/"
CHARTS = {"traffic", "pages", "events", "map", "browsers", "os", "device_types", "referrers", "exit_links",
          "durations", "tutorial_views", "funnel", "courses", "rewatched"}
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
        events = list(generate_events(int(os.environ.get("EVENTLOG_DASHBOARD_EVENTS", "1500")), DAYS, end=now))
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
    page.wait_for_function("window.eventlogDashboard && window.eventlogDashboard.ready", timeout=20_000)


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


def test_staff_sees_every_chart_render_without_errors(site: Pipeline, context: BrowserContext,
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
    if docs:  # the README's picture: overview, pages and geography of the data set's days
        page.set_viewport_size({"width": 1400, "height": 2150})
        today = datetime.now(UTC).date()
        open_dashboard(page, site, f"?start={today - timedelta(days=DAYS - 1)}&end={today}")
        page.wait_for_timeout(500)
        page.screenshot(path=str(ROOT / docs), full_page=False)
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
