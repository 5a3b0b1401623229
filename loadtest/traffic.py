"""Realistic traffic against the demo site, then a summary of what eventlog stored.

    python -m loadtest.traffic --visits 5000 [--base-url URL] [--concurrency 16] [--timeout 120]

Reads the running stack from var/run/stack.json (``python -m deploy.stack up``;
EVENTLOG_VAR_DIR moves var/). Visitors browse through real HTTP: desktop,
phone, tablet and crawler user agents, client IPs from ten countries sent as
X-Forwarded-For (the demo trusts one proxy), logged-in learners (through the
real login form, with CSRF) and anonymous visitors, first-time and returning
ones (a returning visitor keeps its cookies, eventlog_vid included), GETs and
feedback-form POSTs, stale links that end in 404, and referrers. Most human
visitors also run tracker.js: their browsers POST its events (page details,
engaged time, exit links) to the beacon endpoint (loadtest/tracker_beacons.py).

Every response to a path outside EVENTLOG_SKIP_PATHS (redirect hops included)
is one event the middleware records; those are the events sent. The run is
tagged by its start time: only website_logs documents with datetime >= start
are counted. The generator then waits until all of them are stored and prints
the summary. Exit code 0 when every event (and every tracker event the
endpoint accepted) was stored within --timeout, 1 when some were not, 2 when no traffic could be driven at all (no
stack description, a non-local --base-url, or a site that does not answer).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from pymongo.database import Database
from pymongo.errors import PyMongoError

from demo.catalogue import CATALOGUE, slug
from deploy.stack import STATE, geolite_city_db, print_urls
from loadtest.agents import Country, IpPool, human_user_agent, ip_pool, pick_bot
from loadtest.learners import Learning, ProgressLog, ProgressStored, summary_lines, wait_for_progress
from loadtest.tracker_beacons import JS_SHARE, BeaconStats, TrackedPage, Tracker, read_page
from pipeline.config import load_settings
from pipeline.store import DEAD_LETTERS, EXIT_LINK_LOGS, WEBSITE_LOGS, connect

LOCAL_HOSTS = ("127.0.0.1", "localhost")
LEARNERS = tuple(f"learner{i}" for i in range(1, 21))
PASSWORD = "demo-password"
REQUEST_TIMEOUT = 15.0  # seconds per HTTP request
MAX_DRIVE_SECONDS = 600.0  # the traffic phase never runs longer than this
MAX_ERRORS = 200  # requests without an answer before the traffic phase gives up

# Who visits (shares of visitor sessions).
BOT_SHARE = 0.06
LEARNER_SHARE = 0.20
RETURNING_SHARE = 0.45  # of anonymous sessions, when returning visitors exist
LOGOUT_SHARE = 0.04
RETURNING_POOL_MAX = 5000

EXTERNAL_REFERRERS: tuple[tuple[str, float], ...] = (
    ("", 30),  # typed, bookmarked, or a referrer-less app
    ("https://www.google.com/", 25),
    ("https://www.google.co.in/", 15),
    ("https://www.youtube.com/", 10),
    ("https://www.bing.com/", 5),
    ("https://duckduckgo.com/", 4),
    ("https://www.facebook.com/", 4),
    ("https://t.co/", 3),
    ("https://github.com/", 2),
    ("https://www.reddit.com/", 2),
)

# Campaign links (utm_source, utm_medium, utm_campaign on the landing page), with the referrer
# they arrive with (email clients send none); CAMPAIGN_SHARE of visits come through one.
CAMPAIGN_SHARE = 0.12
CAMPAIGNS: tuple[tuple[dict[str, str], str, float], ...] = (
    ({"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "december-courses"}, "", 40),
    ({"utm_source": "facebook", "utm_medium": "social", "utm_campaign": "bash-week"},
     "https://www.facebook.com/", 25),
    ({"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "python-beginners"}, "https://www.google.com/", 20),
    ({"utm_source": "partner-college"}, "https://github.com/", 15),  # a link with the source only
)

# Old links from other sites and typos; all answer 404 (or 301 for the missing slash).
STALE_PATHS: tuple[str, ...] = (
    "/watch/BASH/Loops-in-BASH/French/",
    "/watch/Java/Getting-started-with-Java/English/",
    "/watch/Python/Getting-started-with-IPython/Hindi/",
    "/news/workshop-2019/",
    "/statistics/",
    "/tutorial-search",
)
BOT_PROBES: tuple[str, ...] = ("/sitemap.xml", "/wp-login.php", "/.env")

FEEDBACK_COMMENTS: tuple[str, ...] = (
    "Very helpful tutorial, thank you!",
    "Please add subtitles in Marathi.",
    "The audio in the third video is too low.",
    "Can you make a tutorial on shell functions?",
    "Great series for beginners.",
)


# ---------------------------------------------------------------- stack and settings


class ConfigError(Exception):
    """The run cannot start (no stack, a non-local URL); exit code 2."""


def load_stack() -> dict[str, Any]:
    """The running stack's description (stack.json); ConfigError if there is none."""
    if not STATE.exists():
        raise ConfigError(f"no stack description at {STATE}: start the stack first (make up)")
    state = json.loads(STATE.read_text())
    missing = [k for k in ("web_port", "flower_port", "flower_user", "env") if k not in state]
    if missing:
        raise ConfigError(f"{STATE} lacks {', '.join(missing)}: restart the stack (make down up)")
    return state


def site_url(state: dict[str, Any], override: str | None) -> str:
    """The demo site's base URL (no trailing slash); only local addresses are allowed."""
    url = (override or f"http://127.0.0.1:{state['web_port']}").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_HOSTS:
        raise ConfigError(f"--base-url must be http(s)://127.0.0.1[:port]: {url!r}")
    return url


# ---------------------------------------------------------------- counting


@dataclass
class Stats:
    """What was sent, thread-safe. ``sent`` counts responses the middleware records."""

    skip_paths: tuple[str, ...]
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    skipped: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    sessions: int = 0
    logins: int = 0
    login_failures: int = 0

    def record(self, response: requests.Response) -> None:
        """Count every hop of a response (redirects included) that is not a skipped path."""
        with self.lock:
            for hop in (*response.history, response):
                if urlsplit(hop.url).path.startswith(self.skip_paths):
                    self.skipped += 1
                    continue
                self.sent += 1
                self.methods[hop.request.method or "GET"] += 1
                self.statuses[hop.status_code] += 1

    def error(self, exc: Exception) -> None:
        with self.lock:
            self.errors[type(exc).__name__] += 1

    def failing(self) -> bool:
        """True when the site mostly does not answer (down, or overloaded past the timeout)."""
        failed = sum(self.errors.values())
        return failed >= MAX_ERRORS and failed * 10 > self.sent

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


# ---------------------------------------------------------------- visitors


@dataclass
class Visitor:
    """One browser (or crawler): its cookie jar lives in ``session``."""

    session: requests.Session
    ip: str
    country: Country | None
    username: str | None = None
    bot: bool = False
    logged_in: bool = False
    last_url: str | None = None  # Referer of the next in-site navigation
    runs_js: bool = False  # its pages run tracker.js
    page: TrackedPage | None = None  # the page it is on, when the tracker runs there


def _forwarded_for(ip: str, rng: random.Random) -> str:
    """X-Forwarded-For as our (one, trusted) proxy sends it: the client IP last.

    Some clients sit behind their own proxy, which adds a private hop in front.
    """
    if rng.random() < 0.1:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}, {ip}"
    return ip


def new_session(user_agent: str, accept_language: str) -> requests.Session:
    session = requests.Session()
    session.headers.update({
        "User-Agent": user_agent,
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Accept-Language": accept_language,
    })
    return session


def set_ip(visitor: Visitor, ip: str, rng: random.Random) -> None:
    visitor.ip = ip
    visitor.session.headers["X-Forwarded-For"] = _forwarded_for(ip, rng)


class Crowd:
    """Hands out visitors: new or returning, anonymous, learners (logged in) and crawlers."""

    def __init__(self, ips: IpPool) -> None:
        self.ips = ips
        self.countries = ips.countries()
        self.lock = threading.Lock()
        self.returning: list[Visitor] = []
        self.idle_learners: list[str] = list(LEARNERS)
        self.learners: dict[str, Visitor] = {}

    def _country(self, rng: random.Random) -> Country:
        return rng.choices(self.countries, weights=[c.weight for c in self.countries])[0]

    def _human(self, rng: random.Random, username: str | None = None) -> Visitor:
        country = self._country(rng)
        visitor = Visitor(new_session(human_user_agent(rng), country.accept_language), "", country, username,
                          runs_js=rng.random() < JS_SHARE)
        set_ip(visitor, rng.choice(self.ips.by_country[country.code]), rng)
        return visitor

    def _bot(self, rng: random.Random) -> Visitor:
        bot = pick_bot(rng)
        visitor = Visitor(new_session(bot.user_agent, "en"), "", None, bot=True)
        set_ip(visitor, rng.choice(self.ips.bots[bot.operator]), rng)
        return visitor

    def _learner(self, rng: random.Random) -> Visitor | None:
        with self.lock:
            if not self.idle_learners:
                return None
            name = self.idle_learners.pop(rng.randrange(len(self.idle_learners)))
            known = self.learners.get(name)
        return known or self._human(rng, username=name)

    def _returning(self, rng: random.Random) -> Visitor | None:
        with self.lock:
            if not self.returning:
                return None
            visitor = self.returning.pop(rng.randrange(len(self.returning)))
        if visitor.country and rng.random() < 0.3:  # a new address from the provider's pool
            set_ip(visitor, rng.choice(self.ips.by_country[visitor.country.code]), rng)
        return visitor

    def checkout(self, rng: random.Random) -> Visitor:
        roll = rng.random()
        if roll < BOT_SHARE:
            return self._bot(rng)
        if roll < BOT_SHARE + LEARNER_SHARE:
            learner = self._learner(rng)
            if learner is not None:
                return learner
        if rng.random() < RETURNING_SHARE:
            visitor = self._returning(rng)
            if visitor is not None:
                return visitor
        return self._human(rng)

    def checkin(self, visitor: Visitor) -> None:
        visitor.last_url = None
        if visitor.bot:
            visitor.session.close()
            return
        with self.lock:
            if visitor.username:
                self.learners[visitor.username] = visitor
                self.idle_learners.append(visitor.username)
            elif len(self.returning) < RETURNING_POOL_MAX:
                self.returning.append(visitor)


# ---------------------------------------------------------------- HTTP


NO_REFERRER = ""


class Site:
    """The demo site as seen by visitors: one call is one click."""

    def __init__(self, base_url: str, stats: Stats, target: int, deadline: float, tracker: Tracker,
                 learning: Learning | None = None) -> None:
        self.base_url = base_url
        self.stats = stats
        self.tracker = tracker
        self.learning = learning  # logged-in learners play the videos of watch pages
        self.target = target
        self.deadline = deadline
        self.interrupted = threading.Event()

    def done(self) -> bool:
        return (self.interrupted.is_set() or self.stats.sent >= self.target or self.stats.failing()
                or time.monotonic() >= self.deadline)

    def go(
        self, visitor: Visitor, path: str, method: str = "GET", data: dict[str, str] | None = None,
        referrer: str | None = None, page: bool = True,
    ) -> requests.Response | None:
        """Request ``path`` (Referer: ``referrer``, else the visitor's previous page).

        ``page`` False for what a browser fetches by itself (favicon): it does not
        become the Referer of the next click.
        """
        if visitor.bot:
            visitor.session.cookies.clear()  # crawlers keep no cookies: always first-time
        if page:
            self.leave_page(visitor)
        ref = visitor.last_url if referrer is None else referrer
        headers = {"Referer": ref} if ref else {}
        try:
            response = visitor.session.request(
                method, self.base_url + path, data=data, headers=headers, timeout=REQUEST_TIMEOUT
            )
        except requests.RequestException as exc:
            self.stats.error(exc)
            return None
        self.stats.record(response)
        if page and response.headers.get("Content-Type", "").startswith("text/html"):
            visitor.last_url = response.url
            if visitor.runs_js:
                visitor.page = read_page(response, ref or "")
                if visitor.page is not None:
                    self.tracker.loaded(visitor.session, visitor.page, visitor.country.timezone)
        return response

    def leave_page(self, visitor: Visitor, end_of_visit: bool = False) -> None:
        """The tracker's goodbye for the page the visitor is on; a visit may end on an exit link."""
        if visitor.page is not None:
            self.tracker.left(visitor.session, visitor.page, exit_ok=end_of_visit)
            visitor.page = None

    def post_form(self, visitor: Visitor, path: str, fields: dict[str, str]) -> requests.Response | None:
        """POST a form the way a browser does after rendering it: CSRF token from the cookie."""
        token = visitor.session.cookies.get("csrftoken") or ""
        return self.go(visitor, path, "POST", {**fields, "csrfmiddlewaretoken": token})


def log_in(site: Site, visitor: Visitor) -> None:
    """GET the login form (sets csrftoken), POST the credentials, follow the redirect home."""
    assert visitor.username is not None
    if site.go(visitor, "/accounts/login/") is None:
        return
    response = site.post_form(visitor, "/accounts/login/", {"username": visitor.username, "password": PASSWORD})
    ok = response is not None and bool(response.history) and urlsplit(response.url).path == "/"
    visitor.logged_in = ok
    site.stats.add("logins" if ok else "login_failures")


def log_out(site: Site, visitor: Visitor) -> None:
    if site.post_form(visitor, "/accounts/logout/", {}) is not None:
        visitor.logged_in = False


# ---------------------------------------------------------------- what visitors click


COURSE_WEIGHTS = {"BASH": 60, "Python": 40}  # other courses: 20


def course_choice(rng: random.Random) -> str:
    return rng.choices(list(CATALOGUE), weights=[COURSE_WEIGHTS.get(f, 20) for f in CATALOGUE])[0]


def language_for(visitor: Visitor, foss: str, rng: random.Random) -> str:
    available = CATALOGUE[foss]["languages"]
    prefs = [(lang, w) for lang, w in (visitor.country.languages if visitor.country else ()) if lang in available]
    if not prefs:
        return "English" if "English" in available else available[0]
    return rng.choices([p[0] for p in prefs], weights=[p[1] for p in prefs])[0]


def search_path(foss: str, language: str) -> str:
    return "/tutorial-search/?" + urlencode({"foss": foss, "language": language})


def watch_path(foss: str, index: int, language: str) -> str:
    title = CATALOGUE[foss]["tutorials"][index]
    return f"/watch/{foss}/{slug(title)}/{language}/"


@dataclass
class Place:
    """Where a visitor is: a page kind and the course context it carries."""

    kind: str  # home | search | watch | cdcontent | feedback | stale
    foss: str = ""
    language: str = ""
    index: int = 0

    def path(self, rng: random.Random) -> str:
        if self.kind == "search":
            return search_path(self.foss, self.language)
        if self.kind == "watch":
            return watch_path(self.foss, self.index, self.language)
        if self.kind == "stale":
            return rng.choice(STALE_PATHS)
        return {"home": "/", "cdcontent": "/cdcontent/", "feedback": "/feedback/"}[self.kind]


def _weighted(rng: random.Random, options: dict[str, float]) -> str:
    return rng.choices(list(options), weights=list(options.values()))[0]


ENTRY = {"home": 34, "search": 24, "watch": 31, "cdcontent": 5, "feedback": 2, "stale": 4}
NEXT = {
    "home": {"search": 60, "watch": 15, "cdcontent": 10, "feedback": 5, "home": 5, "stale": 2},
    "search": {"watch": 75, "search": 12, "home": 10, "stale": 1},
    "watch": {"next": 50, "search": 22, "watch": 15, "home": 10, "stale": 1},
    "cdcontent": {"home": 50, "search": 45, "stale": 5},
    "feedback": {"home": 60, "search": 40},
    "stale": {"home": 70, "search": 30},
}


def move(place: Place | None, visitor: Visitor, rng: random.Random) -> Place:
    """The next page: an entry page for ``None``, else a likely click from ``place``."""
    kind = _weighted(rng, ENTRY if place is None else NEXT[place.kind])
    if kind == "next" and place is not None:  # the next tutorial of the same course
        count = len(CATALOGUE[place.foss]["tutorials"])
        return Place("watch", place.foss, place.language, (place.index + 1) % count)
    foss = place.foss if place is not None and place.foss and rng.random() < 0.8 else course_choice(rng)
    language = language_for(visitor, foss, rng)
    return Place(kind, foss, language, rng.randrange(len(CATALOGUE[foss]["tutorials"])))


def journey_length(rng: random.Random) -> int:
    """Pages in one visit: 1 + geometric, mean about 4, at most 15."""
    return min(15, 1 + int(math.log(1 - rng.random()) / math.log(0.72)))


def campaign_link(path: str, rng: random.Random) -> tuple[str, str]:
    """``path`` as a campaign's link lands on it (utm_* added to its query), and that link's referrer."""
    params, referrer, _weight = rng.choices(CAMPAIGNS, weights=[c[2] for c in CAMPAIGNS])[0]
    return path + ("&" if "?" in path else "?") + urlencode(params), referrer


def send_feedback(site: Site, visitor: Visitor, rng: random.Random) -> None:
    """Most visitors on the feedback page fill it in: POST -> 302 -> thank-you page."""
    if rng.random() < 0.7:
        site.post_form(visitor, "/feedback/", {"name": f"Visitor {rng.randrange(1000)}",
                                               "comment": rng.choice(FEEDBACK_COMMENTS)})


def human_visit(site: Site, visitor: Visitor, rng: random.Random) -> None:
    """One visit: an entry page (external referrer), logging in if a learner, some clicks."""
    first_ever = not visitor.session.cookies
    place = move(None, visitor, rng)
    referrer = _weighted(rng, dict(EXTERNAL_REFERRERS))
    landing = place.path(rng)
    if rng.random() < CAMPAIGN_SHARE:
        landing, referrer = campaign_link(landing, rng)
    site.go(visitor, landing, referrer=referrer)
    if first_ever:
        site.go(visitor, "/favicon.ico", page=False)  # skipped by the middleware: not an event
    if visitor.username and not visitor.logged_in and not site.done():
        log_in(site, visitor)
        place = Place("home")
    for _ in range(journey_length(rng) - 1):
        if site.done():
            return
        if place.kind == "feedback":
            send_feedback(site, visitor, rng)
        place = move(place, visitor, rng)
        response = site.go(visitor, place.path(rng))
        if place.kind == "watch" and visitor.logged_in:
            play_video(site, visitor, place, response, rng)
    if visitor.logged_in and rng.random() < LOGOUT_SHARE and not site.done():
        log_out(site, visitor)


def play_video(site: Site, visitor: Visitor, place: Place, response: requests.Response | None,
               rng: random.Random) -> None:
    """A learner on a watch page plays (some of) the video, as demo/static/demo/player.js reports it."""
    if site.learning is None or response is None or response.status_code != 200 or not visitor.username:
        return
    course = CATALOGUE[place.foss]
    tutorial = {"foss": place.foss, "language": place.language, "title": course["tutorials"][place.index],
                "length": course["lengths"][place.index]}
    site.learning.watch(visitor.session, response.text, visitor.username, tutorial, rng)


def crawl_paths(rng: random.Random) -> Iterator[str]:
    yield "/"
    for foss, course in CATALOGUE.items():
        for language in course["languages"]:
            yield search_path(foss, language)
            for index in range(len(course["tutorials"])):
                if rng.random() < 0.3:
                    yield watch_path(foss, index, language)
    yield "/cdcontent/"
    yield rng.choice(BOT_PROBES)


def bot_visit(site: Site, visitor: Visitor, rng: random.Random) -> None:
    """A crawler: robots.txt (skipped), then a slice of the site, no cookies, no referrer."""
    site.go(visitor, "/robots.txt", referrer=NO_REFERRER, page=False)
    paths = list(crawl_paths(rng))
    start = rng.randrange(len(paths))
    for path in paths[start: start + rng.randint(3, 10)]:
        if site.done():
            return
        site.go(visitor, path, referrer=NO_REFERRER)


# ---------------------------------------------------------------- driving


def worker(site: Site, crowd: Crowd, rng: random.Random) -> None:
    while not site.done():
        visitor = crowd.checkout(rng)
        site.stats.add("sessions")
        try:
            (bot_visit if visitor.bot else human_visit)(site, visitor, rng)
            site.leave_page(visitor, end_of_visit=True)
        finally:
            crowd.checkin(visitor)


def drive(site: Site, crowd: Crowd, concurrency: int, seed: int | None) -> float:
    """Run ``concurrency`` browsing threads until the target is reached; returns seconds taken."""
    started = time.monotonic()
    tty = sys.stderr.isatty()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="visitor") as pool:
        rngs = [random.Random(None if seed is None else seed * 1000 + i) for i in range(concurrency)]
        futures = [pool.submit(worker, site, crowd, rng) for rng in rngs]
        try:
            ticks = 0
            while not all(f.done() for f in futures):
                time.sleep(0.5)
                ticks += 1
                if tty or ticks % 10 == 0:
                    progress(site.stats, site.target, time.monotonic() - started, tty)
        except KeyboardInterrupt:
            site.interrupted.set()
            raise
        for f in futures:
            f.result()  # re-raise a worker's bug instead of hiding it
    progress(site.stats, site.target, time.monotonic() - started, tty)
    if tty:
        sys.stderr.write("\n")
    return time.monotonic() - started


def progress(stats: Stats, target: int, elapsed: float, tty: bool) -> None:
    """One progress line: redrawn in place on a terminal, else a line every 5 s."""
    rate = stats.sent / elapsed if elapsed > 0 else 0.0
    line = f"  sent {stats.sent}/{target} events in {elapsed:.0f}s ({rate:.0f}/s)"
    sys.stderr.write(f"\r{line}" if tty else f"{line}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- waiting and summary


def run_filter(start: datetime) -> dict[str, Any]:
    return {"datetime": {"$gte": start}}


@dataclass
class Stored:
    count: int
    dead: int
    waited: float
    complete: bool


def dead_letters_since(db: Database, start: datetime) -> int:
    return db[DEAD_LETTERS].count_documents(run_filter(start))


def wait_for_storage(db: Database, start: datetime, sent: int, timeout: float) -> Stored:
    """Poll once a second until this run's events are all stored, cannot all be, or time is up."""
    began = time.monotonic()
    stored = dead = 0
    last_note = 0.0
    while True:
        waited = time.monotonic() - began
        try:
            stored = db[WEBSITE_LOGS].count_documents(run_filter(start))
            dead = dead_letters_since(db, start)
        except PyMongoError as exc:
            print(f"  store unreachable ({type(exc).__name__}); retrying", file=sys.stderr)
        if stored >= sent:
            return Stored(stored, dead, waited, True)
        if stored + dead >= sent:  # the rest went to dead_letters: waiting will not help
            return Stored(stored, dead, waited, False)
        if waited >= timeout:
            return Stored(stored, dead, waited, False)
        if waited - last_note >= 5:
            print(f"  waiting: {stored}/{sent} events stored after {waited:.0f}s", file=sys.stderr)
            last_note = waited
        time.sleep(1)


@dataclass
class TrackerStored:
    """What became of the tracker's events: merged into page views, or exit links."""

    with_browser_details: int  # page views the tracker's pageview reached (sources holds "js")
    with_engaged_time: int
    exit_links: int
    engaged_seconds: list[float]
    waited: float
    complete: bool


def tracker_counts(db: Database, start: datetime) -> tuple[int, int, int]:
    run = run_filter(start)
    return (db[WEBSITE_LOGS].count_documents({**run, "sources": "js"}),
            db[WEBSITE_LOGS].count_documents({**run, "visit_duration": {"$exists": True}}),
            db[EXIT_LINK_LOGS].count_documents(run))


def wait_for_tracker(db: Database, start: datetime, beacons: BeaconStats, timeout: float) -> TrackerStored:
    """Poll until every accepted tracker event has reached MongoDB (merged, or an exit link)."""
    began = time.monotonic()
    wanted = (beacons.accepted["pageview"], len(beacons.page_views_ended), beacons.accepted["exit"])
    while True:
        waited = time.monotonic() - began
        try:
            counts = tracker_counts(db, start)
        except PyMongoError as exc:
            print(f"  store unreachable ({type(exc).__name__}); retrying", file=sys.stderr)
            counts = (0, 0, 0)
        complete = all(have >= want for have, want in zip(counts, wanted, strict=True))
        if complete or waited >= timeout:
            durations = [d["visit_duration"] for d in db[WEBSITE_LOGS].find(
                {**run_filter(start), "visit_duration": {"$exists": True}}, {"visit_duration": 1})]
            return TrackerStored(*counts, durations, waited, complete)
        time.sleep(1)


def group_counts(db: Database, match: dict[str, Any], key: str, limit: int | None = None) -> list[tuple[Any, int]]:
    """(value, count) of ``key`` over the matched documents, most frequent first."""
    pipeline: list[dict[str, Any]] = [
        {"$match": match},
        {"$group": {"_id": f"${key}", "n": {"$sum": 1}}},
        {"$sort": {"n": -1, "_id": 1}},
    ]
    if limit:
        pipeline.append({"$limit": limit})
    return [(row["_id"], row["n"]) for row in db[WEBSITE_LOGS].aggregate(pipeline)]


def run_ids(db: Database, start: datetime) -> tuple[list[str], list[float]]:
    """Ids of this run's documents and their lag (stored_at - datetime) in ms.

    The breakdowns then match on these ids: nx-27017 (0.8.1) ignores date
    comparisons inside aggregation $match stages (find honours them).
    """
    ids: list[str] = []
    lags: list[float] = []
    for doc in db[WEBSITE_LOGS].find(run_filter(start), {"datetime": 1, "stored_at": 1}):
        ids.append(doc["_id"])
        if doc.get("stored_at") and doc.get("datetime"):
            lags.append((doc["stored_at"] - doc["datetime"]).total_seconds() * 1000)
    return ids, lags


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def as_bool(value: Any) -> bool | None:
    """Booleans as stored (nx-27017 groups them as 0/1)."""
    return None if value is None else bool(value)


def fold(rows: Iterable[tuple[Any, int]], label: Any) -> list[tuple[str, int]]:
    """Re-group (value, count) rows by ``label(value)``, most frequent first."""
    folded: Counter[str] = Counter()
    for value, n in rows:
        folded[label(value)] += n
    return folded.most_common()


def table(title: str, rows: list[tuple[Any, int]], total: int, sent: Counter[str] | None = None) -> None:
    print(f"\n{title}")
    for value, n in rows:
        share = f"{100 * n / total:5.1f} %" if total else ""
        extra = f"  (sent {sent[str(value)]})" if sent is not None else ""
        print(f"  {n:7d}  {share}  {'(none)' if value in (None, '') else value}{extra}")


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def health_line(base_url: str) -> str:
    """One line from the health endpoint (a skipped path: it records no event)."""
    try:
        # Anonymous callers get the status word only; with the site's token, the figures too.
        token = os.environ.get("EVENTLOG_HEALTH_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = requests.get(f"{base_url}/eventlog/health/", headers=headers, timeout=10)
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        return f"unavailable ({type(exc).__name__})"
    shown = ("status", "broker", "store", "queues", "spool")
    parts = [f"HTTP {response.status_code}"] + [f"{k} {body[k]}" for k in shown if k in body]
    return ", ".join(parts)


@dataclass
class Run:
    start: datetime
    target: int
    concurrency: int
    drive_seconds: float
    stats: Stats
    stored: Stored
    beacons: BeaconStats
    tracked: TrackerStored
    learning: ProgressLog | None = None
    learned: ProgressStored | None = None


def print_traffic(run: Run) -> None:
    s = run.stats
    rate = s.sent / run.drive_seconds if run.drive_seconds > 0 else 0.0
    print("\n=== eventlog demo traffic ===")
    print(f"run started      {run.start:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC")
    print(f"events sent      {s.sent} (target {run.target}) in {run.drive_seconds:.1f} s = {rate:.1f} visits/s, "
          f"{run.concurrency} threads, {s.sessions} visitor sessions")
    print(f"logins           {s.logins} ok, {s.login_failures} failed")
    print(f"not counted      {s.skipped} requests to skipped paths (favicon, robots.txt), "
          f"{sum(s.errors.values())} without an answer" + (f" {dict(s.errors)}" if s.errors else ""))
    print("HTTP statuses    " + ", ".join(f"{code}: {n}" for code, n in sorted(s.statuses.items())))


def print_storage(run: Run, db: Database, lags: list[float]) -> None:
    st = run.stored
    verdict = "all stored" if st.complete else "NOT all stored"
    print(f"events stored    {st.count} of {run.stats.sent} ({verdict}; waited {st.waited:.1f} s after the traffic)")
    if st.count > run.stats.sent:
        print(f"                 {st.count - run.stats.sent} more than sent: other traffic on the site, "
              "or requests that timed out here but reached the site")
    print(f"dead letters     {st.dead} this run ({db[DEAD_LETTERS].count_documents({})} in total)")
    print(f"lag              p50 {fmt_ms(percentile(lags, 50))}, p99 {fmt_ms(percentile(lags, 99))}, "
          f"max {fmt_ms(max(lags) if lags else None)}  (stored_at - datetime, {len(lags)} events)")


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def print_tracker(run: Run) -> None:
    b, t = run.beacons, run.tracked
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(b.statuses.items()))
    kinds = ", ".join(f"{kind} {b.accepted[kind]}" for kind in ("pageview", "visit_end", "exit"))
    verdict = "all stored" if t.complete else "NOT all stored"
    print(f"\ntracker.js       {b.posts} beacon POSTs to collect/ ({statuses}); accepted: {kinds}")
    print(f"merged           {t.with_browser_details} page views hold the browser's title, screen and time zone "
          f"({verdict}; waited {t.waited:.1f} s)")
    median, p90 = (fmt_seconds(percentile(t.engaged_seconds, q)) for q in (50, 90))
    print(f"engaged time     {t.with_engaged_time} page views, median {median}, p90 {p90}")
    hosts: Counter[str] = Counter()
    for url, n in b.exit_links.items():
        hosts[urlsplit(url).netloc] += n
    top = ", ".join(f"{host} {n}" for host, n in hosts.most_common(5))
    print(f"exit links       {t.exit_links} stored of {b.accepted['exit']} accepted" + (f": {top}" if top else ""))


def print_breakdowns(run: Run, db: Database, ids: list[str]) -> None:
    if not ids:
        return
    match = {"_id": {"$in": ids}}
    total = len(ids)
    table("top pages (path_info)", group_counts(db, match, "path_info", 10), total)
    table("event names", group_counts(db, match, "event_name", 10), total)
    table("countries", group_counts(db, match, "country", 12), total)
    table("browsers", group_counts(db, match, "browser_family", 10), total)
    table("devices (device_type)", group_counts(db, match, "device_type"), total)
    users = fold(group_counts(db, match, "visited_by"),
                 lambda v: "anonymous" if v in (None, "AnonymousUser") else "logged in")
    table("logged-in vs anonymous", users, total)
    visits = fold(group_counts(db, match, "first_time_visit"),
                  lambda v: {True: "first-time", False: "returning", None: "unknown"}[as_bool(v)])
    table("first-time vs returning", visits, total)
    table("methods", group_counts(db, match, "method"), total, sent=run.stats.methods)


def summarise(run: Run, db: Database, base_url: str, state: dict[str, Any]) -> None:
    ids, lags = run_ids(db, run.start)
    print_traffic(run)
    print_storage(run, db, lags)
    print_tracker(run)
    if run.learning is not None and run.learned is not None:
        print("\n" + "\n".join(summary_lines(run.learning, run.learned)))
    print_breakdowns(run, db, ids)
    print(f"\nhealth           {health_line(base_url)}\n")
    print_urls(state)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.traffic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, default=5000, help="page visits (events) to send, at least")
    parser.add_argument("--base-url", help="demo site (default: http://127.0.0.1:<web_port of stack.json>)")
    parser.add_argument("--concurrency", type=int, default=16, help="browsing threads (default 16)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for all events to be stored (default 120)")
    parser.add_argument("--max-seconds", type=float, default=MAX_DRIVE_SECONDS,
                        help=f"upper bound of the traffic phase (default {MAX_DRIVE_SECONDS:.0f})")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    args = parser.parse_args(argv)
    if args.visits < 1 or args.concurrency < 1:
        parser.error("--visits and --concurrency must be at least 1")
    return args


def mmdb_path(state: dict[str, Any]) -> str:
    return state["env"].get("EVENTLOG_GEOIP_CITY_DB") or geolite_city_db()


def run_start() -> datetime:
    """Now, floored to the millisecond (BSON dates keep milliseconds)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        state = load_stack()
        base_url = site_url(state, args.base_url)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    env = state["env"]
    ips = ip_pool(mmdb_path(state), random.Random(args.seed))
    if not ips.verified:
        print("note: client IPs not checked against a GeoIP database (none readable)", file=sys.stderr)
    stats = Stats(skip_paths=load_settings().skip_paths)
    client = connect(env["EVENTLOG_MONGO_URL"], timeout_ms=5000)
    db = client[env["EVENTLOG_MONGO_DB"]]
    start, began = run_start(), time.monotonic()
    beacons = BeaconStats()
    tracker = Tracker(base_url, beacons, args.seed)
    learning = ProgressLog()
    site = Site(base_url, stats, args.visits, time.monotonic() + args.max_seconds, tracker,
                Learning(base_url, learning))
    print(f"driving {args.visits} page visits at {base_url} with {args.concurrency} threads", file=sys.stderr)
    try:
        seconds = drive(site, Crowd(ips), args.concurrency, args.seed)
        if stats.sent == 0:
            print(f"no request got an answer from {base_url}: {dict(stats.errors)}", file=sys.stderr)
            return 2
        if stats.sent < args.visits:
            why = "the site stopped answering" if stats.failing() else f"--max-seconds {args.max_seconds:.0f}"
            print(f"warning: only {stats.sent} of {args.visits} visits sent ({why})", file=sys.stderr)
        stored = wait_for_storage(db, start, stats.sent, args.timeout)
        tracked = wait_for_tracker(db, start, beacons, max(10.0, args.timeout - stored.waited))
        learned = wait_for_progress(db, learning, max(10.0, args.timeout - stored.waited - tracked.waited))
        summarise(Run(start, args.visits, args.concurrency, seconds, stats, stored, beacons, tracked,
                      learning, learned), db, base_url, state)
    finally:
        client.close()
    print(f"\nrun time         {time.monotonic() - began:.1f} s (traffic {seconds:.1f} s, "
          f"waiting for storage {stored.waited:.1f} s)")
    if stored.count < stats.sent:
        print(f"\nFAILED: {stats.sent - stored.count} of {stats.sent} events not stored "
              f"within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    if not tracked.complete:
        print("\nFAILED: not every accepted tracker event reached MongoDB (see 'merged' and 'exit links')",
              file=sys.stderr)
        return 1
    if not learned.complete:
        print("\nFAILED: not every accepted progress report or mark reached tutorial_progress_logs "
              "(see 'progress stored')", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
