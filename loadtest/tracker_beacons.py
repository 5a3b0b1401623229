"""The part of a browser that runs tracker.js, for the demo's load generator.

Most human visitors run JavaScript, so besides the page requests the
middleware records, their browsers POST tracker events to the beacon endpoint
(/eventlog/collect/): a ``pageview`` when a page loads (title, screen,
language, time zone; merged into the middleware's document through the
page-view id the template tag put into the page), a ``visit_end`` with the
engaged time when the visitor leaves the page, and, for some visits, an
``exit`` when the visitor follows a link to another site. The bodies are the
ones tracker.js sends; nothing here is a shortcut around the endpoint.

Engaged time is drawn, not waited for: the generator moves at machine speed
and says how long a person would have stayed.
"""

from __future__ import annotations

import html
import json
import math
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from loadtest.agents import device_class
from pipeline.events import new_event_id

COLLECT_PATH = "/eventlog/collect/"
JS_SHARE = 0.85  # of human visitors; the rest block scripts or trackers
EXIT_SHARE = 0.12  # of visits that end on a link to another site, when the last page has one
REQUEST_TIMEOUT = 15.0

# Median engaged seconds per page kind (log-normal around it): people watch videos.
MEDIAN_SECONDS = {"watch": 150.0, "other": 25.0}
SPREAD = 0.9  # sigma of the log-normal
MAX_ENGAGED_MS = 2 * 3600 * 1000

# (screen, viewport) per kind of device, from the user agent.
SCREENS = {
    "mobile": ((412, 915), (412, 780)),
    "tablet": ((810, 1080), (810, 980)),
    "desktop": ((1920, 1080), (1536, 864)),
}

_TRACKER_CONFIG = re.compile(r'data-eventlog="([^"]*)"')
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_LINK = re.compile(r'<a\s[^>]*href="(https?://[^"]+)"')


@dataclass
class TrackedPage:
    """A page the tracker runs on, as the browser sees it after loading."""

    page_view_id: str
    path: str
    title: str
    referrer: str
    external_links: tuple[str, ...]


def read_page(response: requests.Response, referrer: str) -> TrackedPage | None:
    """The tracker's view of an HTML answer; None when the page does not include the tracker."""
    if not response.headers.get("Content-Type", "").startswith("text/html"):
        return None
    body = response.text
    config = _TRACKER_CONFIG.search(body)
    if config is None:
        return None
    page_view_id = json.loads(html.unescape(config.group(1))).get("pv")
    if not page_view_id:
        return None
    title = _TITLE.search(body)
    here = urlsplit(response.url)
    links = (html.unescape(url) for url in _LINK.findall(body))
    external = tuple(dict.fromkeys(url for url in links if urlsplit(url).netloc != here.netloc))
    return TrackedPage(page_view_id, here.path, html.unescape(title.group(1)).strip()[:1024] if title else "",
                       referrer, external)


def engaged_ms(page: TrackedPage, rng: random.Random) -> int:
    median = MEDIAN_SECONDS["watch" if page.path.startswith("/watch/") else "other"]
    seconds = rng.lognormvariate(math.log(median), SPREAD)
    return min(MAX_ENGAGED_MS, max(300, round(seconds * 1000)))


def _event(kind: str, page: TrackedPage, **fields: object) -> dict[str, object]:
    return {"kind": kind, "event_id": new_event_id(), "page_view_id": page.page_view_id, "path": page.path,
            "ts": int(time.time() * 1000), **fields}


@dataclass
class BeaconStats:
    """What the tracker side sent, thread-safe."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)  # HTTP status (or error name) per POST
    accepted: Counter[str] = field(default_factory=Counter)  # events per kind answered 204
    exit_links: Counter[str] = field(default_factory=Counter)
    page_views_ended: set[str] = field(default_factory=set)

    def count(self, answer: str, events: list[dict[str, object]]) -> None:
        with self.lock:
            self.statuses[answer] += 1
            if answer != "204":
                return
            for event in events:
                self.accepted[str(event["kind"])] += 1
                if event["kind"] == "exit":
                    self.exit_links[str(event["url"])] += 1
                elif event["kind"] == "visit_end":
                    self.page_views_ended.add(str(event["page_view_id"]))

    @property
    def posts(self) -> int:
        return sum(self.statuses.values())


class Tracker:
    """Sends what tracker.js would send, for any visitor's pages (thread-safe)."""

    def __init__(self, base_url: str, stats: BeaconStats, seed: int | None = None) -> None:
        self.endpoint = base_url + COLLECT_PATH
        self.origin = base_url
        self.stats = stats
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def _post(self, session: requests.Session, events: list[dict[str, object]]) -> None:
        # The browser's own request: same cookies (session, visitor id), same User-Agent and
        # X-Forwarded-For as the page, and the Origin of the page.
        try:
            answer = session.post(self.endpoint, data=json.dumps({"events": events}), timeout=REQUEST_TIMEOUT,
                                  headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": self.origin})
            status = str(answer.status_code)
        except requests.RequestException as exc:
            status = type(exc).__name__
        self.stats.count(status, events)

    def loaded(self, session: requests.Session, page: TrackedPage, timezone: str) -> None:
        """The pageview event sent when the page has loaded."""
        screen, viewport = SCREENS[device_class(str(session.headers.get("User-Agent", "")))]
        language = session.headers.get("Accept-Language", "en").split(",")[0]
        self._post(session, [_event(
            "pageview", page, title=page.title, referrer=page.referrer, screen_width=screen[0],
            screen_height=screen[1], viewport_width=viewport[0], viewport_height=viewport[1],
            language=language, timezone=timezone,
        )])

    def left(self, session: requests.Session, page: TrackedPage, exit_ok: bool = False) -> None:
        """The page goes away: visit_end with the engaged time, and an exit link if one was followed."""
        with self._rng_lock:  # one generator for all visitor threads
            duration_ms = engaged_ms(page, self._rng)
            exit_url = (self._rng.choice(page.external_links)
                        if exit_ok and page.external_links and self._rng.random() < EXIT_SHARE else None)
        events = [_event("visit_end", page, duration_ms=duration_ms, title=page.title, referrer=page.referrer)]
        if exit_url:
            events.insert(0, _event("exit", page, url=exit_url))
        self._post(session, events)
