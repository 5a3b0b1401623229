"""Offline packages in a real headless Chromium: download through the site, unzip, watch from
file:// with the network off, close the browser, open the package again online, and find
every page view and report stored once, in its own time, and the course progress on the site.
Also: a forged sync is refused, and a tracker on a second origin reports with its own site."""

from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

from deploy.stack import free_port
from tests.helpers.pipeline import Pipeline, live_site, logged_in, wait_until
from tests.integration.conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration

PASSWORD = "demo-password"
LEARNER = "learner11"
WATCHED = "Conditional execution"  # 150 s: 3 minutes, complete at 3
MARKED = "Loops in BASH"
SECOND_PORT = free_port()  # the second "subdomain": another origin on this machine


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mongo, redis_url: str, demo_var_dir: Path) -> Iterator[Pipeline]:  # noqa: ANN001
    second = f"http://127.0.0.1:{SECOND_PORT}"
    with live_site(tmp_path_factory.mktemp("offline"), redis_url, mongo, demo_var_dir,
                   tracker_credential_origins=second, sites=f"127.0.0.1:{SECOND_PORT}=forums") as site:
        yield site


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


def persistent(playwright: Playwright, profile: Path, offline: bool = False) -> BrowserContext:
    """A browser with a profile on disk: what it keeps in localStorage survives closing it.
    Offline is set at launch, not after: a relaunched profile may restore its last page at once,
    and that page, online for a moment, would sync before a later set_offline took effect."""
    return playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                         headless=True, offline=offline)


def login(site: Pipeline, username: str) -> requests.Session:
    return logged_in(site, username, PASSWORD)


def download(session: requests.Session, site: Pipeline, folder: Path) -> Path:
    page = session.get(site.url("/cdcontent/"), timeout=10).text
    assert "/cdcontent/download/BASH/English/" in page
    answer = session.get(site.url("/cdcontent/download/BASH/English/"), timeout=60)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(answer.content)).extractall(folder)
    return folder / "BASH-English"


def queued(context: BrowserContext, package: Path) -> list[dict]:
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(package.joinpath("index.html").as_uri())
    return page.evaluate("""() => Object.keys(localStorage).filter(k => k.endsWith('.queue'))
                                  .flatMap(k => JSON.parse(localStorage.getItem(k)))""")


def test_a_course_watched_offline_counts_on_the_site_after_the_sync(site, mongo, playwright, tmp_path):  # noqa: ANN001
    session = login(site, LEARNER)
    package = download(session, site, tmp_path / "unzipped")
    profile = tmp_path / "profile"

    # ---- offline: no network at all
    context = persistent(playwright, profile, offline=True)
    page = context.new_page()
    page.goto(package.joinpath("index.html").as_uri())
    assert page.locator("table a").count() == 8
    page.click(f"text={WATCHED}")  # navigation between the package's pages
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    page.evaluate("() => { const v = document.getElementById('player'); v.muted = true; v.playbackRate = 16;"
                  " return v.play(); }")
    page.wait_for_function("document.getElementById('player').ended", timeout=60_000)
    assert page.text_content("#completed") == "Yes"
    page.click("text=← BASH")  # back to the course
    page.click(f"text={MARKED}")
    page.click("#mark-complete")
    page.goto(package.joinpath("index.html").as_uri())
    statuses = page.locator(".eventlog-status.done").all_text_contents()
    assert statuses == ["Yes", "Yes"]
    page.wait_for_timeout(300)
    waiting = page.evaluate("window.eventlogOffline.queued()")
    context.close()
    views = {}
    context = persistent(playwright, profile, offline=True)
    for entry in queued(context, package):
        if entry["ep"] == "collect" and entry["body"]["kind"] == "pageview":
            views[entry["body"]["page_view_id"]] = entry["body"]
    context.close()
    assert waiting >= 8 and len(views) >= 5  # index, tutorial, index, tutorial, index (+ the reopening)
    assert mongo.database.website_logs.count_documents({"_id": {"$in": list(views)}}) == 0
    assert mongo.database.tutorial_progress_logs.count_documents({"username": LEARNER}) == 0

    # ---- online again, the site running: the package syncs on load
    context = persistent(playwright, profile)
    page = context.new_page()
    page.goto(package.joinpath("index.html").as_uri())
    wait_until(lambda: page.evaluate("window.eventlogOffline.queued()") == 0, 60, "the package's queue to drain")
    assert page.evaluate("window.eventlogOffline.status().state") == "ok"
    wait_until(lambda: mongo.database.website_logs.count_documents({"_id": {"$in": list(views)}}) == len(views),
               60, "every offline page view stored")
    for pv, sent in views.items():
        doc = mongo.database.website_logs.find_one({"_id": pv})
        assert doc["source"] == "offline" and doc["visited_by"] == LEARNER and doc["sources"] == ["offline"]
        assert doc["datetime"] == datetime.fromtimestamp(sent["ts"] / 1000, UTC)  # its own time, not the sync's
        assert doc["site"] == f"127.0.0.1:{site.web_port}"  # the host the package was downloaded from
    tutorial_views = mongo.database.website_logs.count_documents(
        {"_id": {"$in": list(views)}, "path_info": "/watch/BASH/Conditional-execution/English/"})
    assert tutorial_views == 1 and mongo.database.website_logs.find_one(
        {"_id": {"$in": list(views)}, "path_info": "/watch/BASH/Conditional-execution/English/"}
    )["event_name"] == "event.video.watch"

    def progress() -> dict:
        course = session.get(site.url("/eventlog/progress/?foss=BASH&language=English"), timeout=10).json()
        return {row["tutorial"]: row for row in course["tutorials"]}, course

    rows, course = wait_until(lambda: (lambda r: r if r[0][WATCHED]["completed"] and r[0][MARKED]["completed"]
                                       else None)(progress()), 60, "both tutorials completed on the site")
    assert course["completed"] == 2 and course["percent"] == 25
    assert rows[MARKED]["manual"] is True and rows[WATCHED]["manual"] is False
    watched = mongo.database.tutorial_progress_logs.find_one({"username": LEARNER, "tutorial": WATCHED})
    assert watched["minutes_watched"] == [0, 1, 2] and watched["visits"] == 1

    # ---- a later page load sends nothing twice
    page.goto(package.joinpath("tutorials", "Loops-in-BASH.html").as_uri())
    wait_until(lambda: page.evaluate("window.eventlogOffline.queued()") == 0, 30, "the new page view sent")
    page.wait_for_timeout(1500)
    context.close()
    assert mongo.database.website_logs.count_documents({"_id": {"$in": list(views)}}) == len(views)
    assert mongo.database.tutorial_progress_logs.count_documents({"username": LEARNER}) == 2


def test_a_forged_sync_is_refused_and_stores_nothing(site, mongo):  # noqa: ANN001
    pv = uuid.uuid4().hex
    event = {"kind": "pageview", "event_id": uuid.uuid4().hex, "page_view_id": pv, "path": "/", "ts": 1,
             "title": "forged"}
    for token in (None, "forged-token", "eyJmb28iOiJiYXIifQ:1abc:xyz"):
        headers = {"Origin": "null", "Content-Type": "application/json"}
        if token:
            headers["X-Eventlog-Package"] = token
        answer = requests.post(site.url("/eventlog/collect/"), data=json.dumps({"events": [event]}),
                               headers=headers, timeout=10)
        assert answer.status_code == 403
        mark = requests.post(site.url("/eventlog/progress/mark/"), headers=headers, timeout=10, data=json.dumps(
            {"foss": "BASH", "language": "English", "tutorial": MARKED, "completed": True}))
        assert mark.status_code == 403
    # A page view of the site itself, made afterwards, is stored: the forged one never will be.
    later = site.get("/feedback/")
    assert later.status_code == 200
    wait_until(lambda: mongo.database.website_logs.find_one({"path_info": "/feedback/"}), 30, "a later page view")
    assert mongo.database.website_logs.count_documents({"_id": pv}) == 0


class _SubdomainPage(BaseHTTPRequestHandler):
    """A page of the "other subdomain", running the main site's tracker against its collect/."""

    main = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        config = json.dumps({"endpoint": f"{self.main}/eventlog/collect/", "cred": True, "dnt": True})
        body = (f'<!doctype html><title>Forums</title><h1>Forums</h1>'
                f'<script src="{self.main}/static/eventlog/tracker.js" data-eventlog=\'{config}\' defer></script>')
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_a_tracker_on_another_origin_reports_with_its_own_site_and_the_same_visitor(site, mongo, playwright):  # noqa: ANN001
    _SubdomainPage.main = f"http://127.0.0.1:{site.web_port}"
    server = ThreadingHTTPServer(("127.0.0.1", SECOND_PORT), _SubdomainPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        page = browser.new_page()
        page.goto(site.url("/"))
        main_pv = page.evaluate("window.eventlog.pageViewId")
        page.goto(f"http://127.0.0.1:{SECOND_PORT}/topics/")
        forum_pv = page.evaluate("window.eventlog.pageViewId")
        wait_until(lambda: page.evaluate("window.eventlog.queued()") == 0 and
                   mongo.database.website_logs.find_one({"_id": forum_pv}), 30, "the subdomain's page view")
    finally:
        browser.close()
        server.shutdown()
    main = wait_until(lambda: mongo.database.website_logs.find_one({"_id": main_pv}), 30, "the main page view")
    forum = mongo.database.website_logs.find_one({"_id": forum_pv})
    assert main["site"] == f"127.0.0.1:{site.web_port}" and forum["site"] == "forums"
    assert forum["source"] == "js" and forum["path_info"] == "/topics/" and forum["page_title"] == "Forums"
    assert forum["visitor_id"] == main["visitor_id"] is not None  # one visitor across the two origins
