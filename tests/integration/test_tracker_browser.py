"""The JS tracker in a real headless Chromium against the live demo site, a real
worker and the real store: one page view = one document holding both records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.helpers.pipeline import Pipeline, live_site, wait_until

pytestmark = pytest.mark.integration

SEARCH = "/tutorial-search/?foss=BASH&language=English"
EXTERNAL = "https://www.gnu.org/software/bash/"
LONDON_IP = "81.2.69.142"  # GB, England, London in the GeoIP test database


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mongo, redis_url: str, demo_var_dir: Path) -> Iterator[Pipeline]:  # noqa: ANN001
    with live_site(tmp_path_factory.mktemp("tracker"), redis_url, mongo, demo_var_dir, tracker_geolocation=1) as site:
        yield site


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(extra_http_headers={"X-Forwarded-For": LONDON_IP})
    # Exit links must never leave this machine: answer them here.
    ctx.route("https://www.gnu.org/**", lambda route: route.fulfill(status=200, body="<title>GNU</title>bye"))
    yield ctx
    ctx.close()


def page_view_id(page: Page) -> str:
    return page.evaluate("window.eventlog.pageViewId")


def document(mongo, pv: str, check, timeout: float = 30) -> dict:  # noqa: ANN001
    """The page view document once ``check(doc)`` holds."""
    def ready() -> dict | None:
        doc = mongo.database.website_logs.find_one({"_id": pv})
        return doc if doc and check(doc) else None
    return wait_until(ready, timeout, f"page view {pv} to satisfy the check")


def hide(page: Page) -> None:
    """Switch away from the tab. Headless Chromium keeps every tab 'visible', so the
    switch is emulated the way the browser reports it: visibilityState + event."""
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")


def show(page: Page) -> None:
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")


def test_page_view_is_one_document_with_server_fields_title_and_duration(site, mongo, context):  # noqa: ANN001
    page = context.new_page()
    page.goto(site.url(SEARCH))
    pv = page_view_id(page)
    page.wait_for_timeout(1200)
    page.goto(site.url("/cdcontent/"))  # navigating away finalises the duration
    doc = document(mongo, pv, lambda d: "visit_duration" in d and d.get("page_title"))
    assert mongo.database.website_logs.count_documents({"_id": pv}) == 1
    assert doc["page_title"] == "BASH tutorials | eventlog demo"
    assert doc["visit_duration"] >= 1.0
    assert doc["source"] == "middleware" and sorted(doc["sources"]) == ["js", "middleware"]
    assert doc["path_info"] == "/tutorial-search/" and doc["method"] == "GET"
    assert doc["event_name"] == "event.tutorial.search"
    assert doc["browser_family"] == "HeadlessChrome" or doc["browser_family"].startswith("Chrom")
    assert (doc["country"], doc["city"]) == ("United Kingdom", "London")
    assert doc["screen_width"] > 0 and doc["viewport_width"] > 0 and doc["language"]
    assert doc["timezone"]
    # The tracker's record never created a second document for the same visit.
    assert mongo.database.website_logs.count_documents(
        {"visitor_id": doc["visitor_id"], "path_info": "/tutorial-search/"}) == 1


def test_exit_link_is_recorded_and_navigation_happens(site, mongo, context):  # noqa: ANN001
    page = context.new_page()
    page.goto(site.url("/"))
    pv = page_view_id(page)
    page.click("a.external")
    page.wait_for_url(EXTERNAL)
    link = wait_until(lambda: mongo.database.exit_link_logs.find_one({"page_view_id": pv}), 30, "the exit link")
    assert link["exit_link"] == EXTERNAL
    assert link["path_info"] == "/"
    assert link["visited_by"] == "AnonymousUser"


def test_switching_tabs_and_closing_the_tab_finalise_duration(site, mongo, context):  # noqa: ANN001
    page = context.new_page()
    page.goto(site.url("/"))
    pv = page_view_id(page)
    page.wait_for_timeout(800)
    hide(page)
    first = document(mongo, pv, lambda d: d.get("visit_duration", 0) >= 0.8)["visit_duration"]
    page.wait_for_timeout(1500)  # hidden time does not count as engaged time
    show(page)
    page.wait_for_timeout(700)
    page.close(run_before_unload=True)  # closing the tab sends the final duration
    final = document(mongo, pv, lambda d: d["visit_duration"] > first)["visit_duration"]
    assert first + 0.6 <= final < first + 1.5


def test_offline_events_are_queued_and_delivered_once(site, mongo, context):  # noqa: ANN001
    page = context.new_page()
    page.goto(site.url("/"))
    pv = page_view_id(page)
    document(mongo, pv, lambda d: d.get("page_title"))
    context.set_offline(True)
    hide(page)
    # Stay on the page (the tracker's listener still sees the click) to watch its queue.
    page.evaluate("document.querySelector('a.external').addEventListener('click', e => e.preventDefault())")
    page.click("a.external")
    assert page.evaluate("window.eventlog.queued()") == 2
    time.sleep(1)
    assert mongo.database.exit_link_logs.count_documents({"page_view_id": pv}) == 0
    context.set_offline(False)  # the browser fires "online": the queue is replayed
    wait_until(lambda: page.evaluate("window.eventlog.queued()") == 0, 20, "the queue to drain")
    wait_until(lambda: mongo.database.exit_link_logs.count_documents({"page_view_id": pv}) == 1, 30, "the exit link")
    document(mongo, pv, lambda d: "visit_duration" in d)
    page.goto(site.url("/cdcontent/"))  # a later page load replays nothing twice
    page.wait_for_timeout(1500)
    assert mongo.database.exit_link_logs.count_documents({"page_view_id": pv}) == 1


def test_granted_geolocation_gives_the_reverse_geocoded_city(site, mongo, browser):  # noqa: ANN001
    ctx = browser.new_context(extra_http_headers={"X-Forwarded-For": LONDON_IP}, permissions=["geolocation"],
                              geolocation={"latitude": 12.9716, "longitude": 77.5946, "accuracy": 20})
    try:
        page = ctx.new_page()
        page.goto(site.url("/"))
        doc = document(mongo, page_view_id(page), lambda d: d.get("location_source") == "browser")
        assert (doc["country"], doc["city"]) == ("India", "Bengaluru")
        # Stored rounded to EVENTLOG_COORDINATE_PRECISION (2 decimals, about 1 km).
        assert (doc["latitude"], doc["longitude"], doc["location_accuracy"]) == (12.97, 77.59, 20)
    finally:
        ctx.close()


def test_denied_geolocation_keeps_geoip_values(site, mongo, context):  # noqa: ANN001
    page = context.new_page()  # no permission granted: the prompt is denied
    page.goto(site.url("/"))
    pv = page_view_id(page)
    page.wait_for_timeout(1500)
    doc = document(mongo, pv, lambda d: d.get("page_title"))
    assert doc["location_source"] == "geoip"
    assert (doc["country"], doc["region"], doc["city"]) == ("United Kingdom", "England", "London")


def test_do_not_track_silences_the_tracker(site, mongo, browser):  # noqa: ANN001
    ctx = browser.new_context()
    ctx.add_init_script("Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})")
    requests: list[str] = []
    try:
        page = ctx.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(site.url("/"))
        pv = page.evaluate("document.querySelector('script[data-eventlog]').dataset.eventlog")
        page.wait_for_timeout(1000)
        page.goto(site.url("/cdcontent/"))
        assert not [u for u in requests if "/eventlog/collect/" in u]
        assert page.evaluate("window.eventlog") is None
        assert '"pv"' in pv  # the page did carry the tracker
    finally:
        ctx.close()


def test_a_tracker_only_page_view_keeps_its_time_when_its_last_record_arrives_first(site, mongo, context):  # noqa: ANN001
    # A page the middleware never saw (a cached copy, answered here by the browser context), whose
    # first record is refused on the way: the engaged-time record, sent seconds later, is the one
    # that creates the document. Its time must be the page view's, not the time the tab was left.
    tracker = ('<script src="/static/eventlog/tracker.js" defer'
               ' data-eventlog=\'{"endpoint": "/eventlog/collect/"}\'></script>')
    context.route(site.url("/cached-page/"), lambda route: route.fulfill(
        status=200, content_type="text/html", body=f"<title>Cached</title><p>cached</p>{tracker}"))
    refused: list[str] = []

    def refuse(route) -> None:  # noqa: ANN001
        refused.append(route.request.post_data or "")
        route.abort()

    collect = site.url("/eventlog/collect/")
    context.route(collect, refuse)
    page = context.new_page()
    before = time.time()
    page.goto(site.url("/cached-page/"))
    pv = page_view_id(page)
    # Waiting through the page: the sync API runs route handlers only inside its own calls.
    wait_until(lambda: page.wait_for_timeout(100) or refused, 10, "the page view record to be refused")
    assert len(refused) == 1 and '"pageview"' in refused[0]
    context.unroute(collect)  # what follows reaches the site
    page.wait_for_timeout(4000)
    left = time.time()
    hide(page)
    doc = document(mongo, pv, lambda d: "visit_duration" in d)
    # The engaged-time record made it (the page view record, queued, waits for the next page):
    assert doc["source"] == "js" and "screen_width" not in doc
    viewed = doc["datetime"].timestamp()
    assert before - 1 <= viewed <= left - 3, (before, viewed, left)
