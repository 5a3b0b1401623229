"""Tutorial progress end to end: the API (auth, validation, isolation between users)
and the demo's watch and search pages in a real headless Chromium."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page

from tests.helpers.pipeline import Pipeline, live_site, logged_in, wait_until

pytestmark = pytest.mark.integration

PASSWORD = "demo-password"
BASICS = ("BASH", "Basics of Shell Scripting", "English")  # 242 s: 5 minutes, complete at 4
GLOBBING = ("BASH", "Globbing and Export statement", "English")  # 207 s: 4 minutes, complete at 4
CONDITIONAL = ("BASH", "Conditional execution", "English")  # 150 s: 3 minutes, complete at 3


def watch_path(foss: str, title: str, language: str) -> str:
    return f"/watch/{foss}/{title.replace(' ', '-')}/{language}/"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mongo, redis_url: str, demo_var_dir: Path) -> Iterator[Pipeline]:  # noqa: ANN001
    with live_site(tmp_path_factory.mktemp("progress"), redis_url, mongo, demo_var_dir) as site:
        yield site


def progress_doc(mongo, username: str, foss: str, title: str, language: str) -> dict | None:  # noqa: ANN001
    return mongo.database.tutorial_progress_logs.find_one(
        {"username": username, "foss": foss, "tutorial": title, "language": language})


# ------------------------------------------------------------------ API


def api_session(site: Pipeline, username: str) -> requests.Session:
    session = logged_in(site, username, PASSWORD)
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": site.url("/"),
                            "Content-Type": "application/json"})
    return session


def report(foss: str, title: str, language: str, **fields) -> str:
    body = {"foss": foss, "tutorial": title, "language": language, "position": 30.0, "minutes": [0],
            "visit_id": uuid.uuid4().hex, "report_id": uuid.uuid4().hex, **fields}
    return json.dumps(body)


def test_anonymous_users_get_401_and_no_data(site, mongo):  # noqa: ANN001
    plain = requests.Session()
    assert plain.get(site.url("/eventlog/progress/?foss=BASH&language=English"), timeout=10).status_code == 401
    answer = plain.post(site.url("/eventlog/progress/"), data=report(*BASICS), timeout=10,
                        headers={"Content-Type": "application/json"})
    # Django's CSRF check refuses an anonymous POST before the view (403); either way nothing is written.
    assert answer.status_code in (401, 403)
    assert "AnonymousUser" not in mongo.database.tutorial_progress_logs.distinct("username")


def test_a_report_is_read_back_at_once_and_only_by_its_author(site, mongo):  # noqa: ANN001
    alice, bob = api_session(site, "learner4"), api_session(site, "learner5")
    # The user comes from the session: a username in the payload is ignored.
    answer = alice.post(site.url("/eventlog/progress/"), timeout=10,
                        data=report(*BASICS, position=130.0, minutes=[0, 1, 2], username="learner5"))
    assert answer.status_code == 200
    assert answer.json()["percent_watched"] == 60 and answer.json()["resume_position"] == 120
    # Read-your-writes: the very next GET reflects the report, stored or not yet.
    course = alice.get(site.url("/eventlog/progress/?foss=BASH&language=English"), timeout=10).json()
    row = next(r for r in course["tutorials"] if r["tutorial"] == BASICS[1])
    assert row["percent_watched"] == 60 and row["started"]
    assert course["continue_with"] == BASICS[1] and course["resume_url"].endswith("?t=120")
    bob_course = bob.get(site.url("/eventlog/progress/?foss=BASH&language=English"), timeout=10).json()
    assert all(not r["started"] for r in bob_course["tutorials"])
    wait_until(lambda: progress_doc(mongo, "learner4", *BASICS), 30, "the report to be stored")
    assert progress_doc(mongo, "learner5", *BASICS) is None
    assert progress_doc(mongo, "learner4", *BASICS)["minutes_watched"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"tutorial": "No Such Tutorial"}, "unknown tutorial"),
        ({"position": -5}, "negative"),
        ({"position": 10_000}, "beyond the end"),
        ({"minutes": [99]}, "minute"),
        ({"position": "soon"}, "number"),
        ({"visit_id": ""}, "visit_id"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": 10**30}, "ts"),
    ],
)
def test_invalid_reports_are_400_with_a_clear_error(site, fields, fragment):  # noqa: ANN001
    alice = api_session(site, "learner4")
    body = json.loads(report(*BASICS))
    body.update(fields)
    answer = alice.post(site.url("/eventlog/progress/"), data=json.dumps(body), timeout=10)
    assert answer.status_code == 400
    assert fragment in answer.json()["error"]


def test_a_report_sent_late_does_not_move_the_resume_position_back(site, mongo):  # noqa: ANN001
    dave = api_session(site, "learner8")
    now_ms = time.time() * 1000
    later = report(*GLOBBING, position=190.0, minutes=[3], ts=now_ms)
    earlier = report(*GLOBBING, position=70.0, minutes=[1], ts=now_ms - 60_000)  # queued offline, sent after
    for body in (later, earlier):
        assert dave.post(site.url("/eventlog/progress/"), data=body, timeout=10).status_code == 200
    doc = wait_until(lambda: (d := progress_doc(mongo, "learner8", *GLOBBING)) and len(d["minutes_watched"]) == 2
                     and d, 30, "both reports")
    assert doc["minutes_watched"] == [1, 3]
    assert doc["resume_position"] == 180  # the report made last, not the one that arrived last


def test_marks_change_only_the_authors_progress(site, mongo):  # noqa: ANN001
    carol = api_session(site, "learner6")
    mark = {"foss": "Python", "language": "Tamil", "tutorial": "Saving plots", "completed": True}
    answer = carol.post(site.url("/eventlog/progress/mark/"), data=json.dumps(mark), timeout=10)
    assert answer.status_code == 200 and answer.json()["completed"] and answer.json()["manual"]
    course = carol.get(site.url("/eventlog/progress/?foss=Python&language=Tamil"), timeout=10).json()
    assert course["completed"] == 1 and course["percent"] == 20
    english = carol.get(site.url("/eventlog/progress/?foss=Python&language=English"), timeout=10).json()
    assert english["completed"] == 0  # the same tutorial in another language is separate progress
    doc = wait_until(lambda: progress_doc(mongo, "learner6", "Python", "Saving plots", "Tamil"), 30, "the mark")
    assert doc["manual"]


# ------------------------------------------------------------------ browser


def login(page: Page, site: Pipeline, username: str) -> None:
    page.goto(site.url("/accounts/login/"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button")
    page.wait_for_url(site.url("/"))


def play(page: Page, start: float = 0.0) -> None:
    # Wait for the metadata first (so the page's own resume seek cannot land after
    # ours), and retry a play() the browser interrupted while it was still loading.
    # Every wait is bounded: on a loaded machine Chromium's media pipeline has been
    # seen to stall for good after a seek, so a stalled start reloads the video and
    # tries again instead of hanging until pytest-timeout.
    page.evaluate("""async start => {
        const v = document.getElementById('player');
        const within = (promise, ms) => Promise.race(
            [promise, new Promise(r => setTimeout(() => r('timeout'), ms))]);
        const state = () => JSON.stringify({
            readyState: v.readyState, networkState: v.networkState, paused: v.paused, seeking: v.seeking,
            currentTime: v.currentTime, duration: v.duration, error: v.error && v.error.message});
        for (let attempt = 0; attempt < 4; attempt++) {
            if (attempt > 0) v.load();
            if (v.readyState < 1) {
                const loaded = new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
                if (await within(loaded, 15000) === 'timeout') continue;
            }
            v.muted = true;
            v.playbackRate = 16;
            v.currentTime = start;
            try {
                if (await within(v.play(), 15000) !== 'timeout') return;
            } catch (e) {  // interrupted by a load: wait a moment, then start over
                await new Promise(r => setTimeout(r, 200));
            }
        }
        throw new Error('the video never started playing: ' + state());
    }""", start)


def test_learner_plays_a_video_and_it_completes_at_80_percent(site, mongo, browser):  # noqa: ANN001
    page = browser.new_page()
    login(page, site, "learner3")
    page.goto(site.url(watch_path(*BASICS)))
    assert page.text_content("#completed") == "No"
    play(page)
    # 4 of 5 minutes watched completes it; the page says so without a reload.
    page.wait_for_function("document.getElementById('completed').textContent === 'Yes'", timeout=60_000)
    page.evaluate("document.getElementById('player').pause()")
    doc = wait_until(lambda: (d := progress_doc(mongo, "learner3", *BASICS)) and d["completed"] and d, 30,
                     "completion to be stored")
    assert set(doc["minutes_watched"]) >= {0, 1, 2, 3}
    assert doc["completed_at"]
    page.close()


def test_seeking_to_the_end_does_not_complete_and_resume_opens_at_the_last_minute(site, mongo, browser):  # noqa: ANN001
    page = browser.new_page()
    login(page, site, "learner3")
    page.goto(site.url(watch_path(*GLOBBING)))
    play(page, start=195)  # skip straight to the last minute and let it end
    page.wait_for_function("document.getElementById('player').ended", timeout=30_000)
    # The pause and ended reports go through the pipeline and may be stored in either
    # order; only the first carries the minute played.
    doc = wait_until(lambda: (d := progress_doc(mongo, "learner3", *GLOBBING)) and d["minutes_watched"] and d,
                     30, "the report of the minute played")
    assert doc["minutes_watched"] == [3]
    assert not doc["completed"]
    assert page.text_content("#completed") == "No"
    page.goto(site.url(watch_path(*GLOBBING)))
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    assert page.evaluate("document.getElementById('player').currentTime") == 180
    page.close()


def test_search_page_shows_course_progress_and_where_to_continue(site, browser):  # noqa: ANN001
    page = browser.new_page()
    login(page, site, "learner3")  # completed BASICS, started GLOBBING in the tests above
    page.goto(site.url("/tutorial-search/?foss=BASH&language=English"))
    assert page.text_content("#course-percent") == "13% complete"  # 1 of 8
    rows = page.locator("tr:has(td.completed)")
    statuses = {rows.nth(i).locator("a").text_content(): rows.nth(i).locator("td.completed").text_content()
                for i in range(rows.count())}
    assert statuses[BASICS[1]] == "Completed: Yes"
    assert statuses[GLOBBING[1]] == "Completed: No"
    assert page.get_attribute("#continue", "href") == watch_path(*GLOBBING) + "?t=180"
    page.close()


def test_mark_buttons_override_and_show_at_once(site, browser):  # noqa: ANN001
    page = browser.new_page()
    login(page, site, "learner7")
    page.goto(site.url(watch_path(*BASICS)))
    page.click("#mark-complete")
    page.wait_for_function("document.getElementById('completed').textContent === 'Yes'")
    page.wait_for_function(f"{queued('learner7')} === 0")  # the server has answered
    page.click("#mark-incomplete")
    page.wait_for_function("document.getElementById('completed').textContent === 'No'")
    page.wait_for_function(f"{queued('learner7')} === 0")
    page.reload()
    assert page.text_content("#completed") == "No"
    page.close()


def queued(username: str) -> str:
    """JS: how many reports and marks the learner's player still holds."""
    return f"JSON.parse(localStorage.getItem('eventlog.progress.{username}') || '[]').length"


def test_minutes_watched_offline_are_kept_and_stored_once_back_online(site, mongo, browser):  # noqa: ANN001
    context = browser.new_context()
    page = context.new_page()
    login(page, site, "learner9")
    page.goto(site.url(watch_path(*CONDITIONAL)))
    # The whole (small) video into the browser's buffer first: offline, nothing more can be fetched.
    page.evaluate("""() => new Promise(resolve => {
        const v = document.getElementById('player');
        v.preload = 'auto';
        const full = () => v.buffered.length && v.buffered.end(v.buffered.length - 1) >= v.duration - 0.5;
        const check = () => full() ? resolve() : setTimeout(check, 100);
        check();
    })""")
    context.set_offline(True)
    play(page)
    page.wait_for_function("document.getElementById('player').ended", timeout=60_000)
    page.click("#mark-incomplete")  # and, still offline, a manual mark after watching it all
    assert page.text_content("#completed") == "No"
    assert page.evaluate(queued("learner9")) >= 3  # a report per minute change, the end, the mark
    page.close()  # gone while offline: only the browser's storage knows what was watched
    assert progress_doc(mongo, "learner9", *CONDITIONAL) is None

    context.set_offline(False)
    page = context.new_page()
    page.goto(site.url(watch_path(*BASICS)))  # the next watch page sends what is queued
    doc = wait_until(lambda: (d := progress_doc(mongo, "learner9", *CONDITIONAL)) and d["manual"]
                     and len(d["minutes_watched"]) == 3 and d, 30, "the queued reports and the mark to be stored")
    assert set(doc["minutes_watched"]) == {0, 1, 2}
    assert not doc["completed"]  # sent in order: the mark came after the minutes that completed it
    assert doc["visits"] == 1
    page.wait_for_function(f"{queued('learner9')} === 0")
    context.close()


def test_anonymous_visitors_see_no_progress_and_send_no_progress_requests(site, browser):  # noqa: ANN001
    page = browser.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(site.url(watch_path(*BASICS)))
    play(page, start=100)
    page.wait_for_timeout(3000)
    page.evaluate("document.getElementById('player').pause()")
    assert page.locator("#completed").count() == 0
    page.goto(site.url("/tutorial-search/?foss=BASH&language=English"))
    assert "Please login to see and save your course progress" in page.text_content("#login-hint")
    assert page.locator("#course-percent").count() == 0
    assert not [u for u in urls if "/eventlog/progress" in u]
    page.close()
