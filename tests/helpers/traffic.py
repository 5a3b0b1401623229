"""Steady page-view traffic for integration tests: paced HTTP GETs, each answered one counted.

Every request carries a unique Referer (``<tag>/<n>``), so what the site answered can
be matched one by one against what MongoDB stored, and a duplicate is visible.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.helpers.pipeline import wait_until

PAGES = ("/", "/tutorial-search/?foss=BASH&language=English", "/cdcontent/",
         "/watch/BASH/Basics-of-Shell-Scripting/English/")


class SteadyTraffic:
    """Sends ``rate`` page views a second to ``base_url`` from a thread pool until stopped.

    Open loop: requests start on schedule whatever the answers' latency, so a stalled
    site or pipeline shows up instead of slowing the traffic down.
    """

    def __init__(self, base_url: str, tag: str, rate: float, threads: int = 8) -> None:
        self.base_url, self.tag, self.rate = base_url, tag, rate
        self.answered: list[str] = []  # referrers of page views that got a complete answer
        self.failed = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(threads)
        self._local = threading.local()
        self._thread = threading.Thread(target=self._pace, daemon=True)
        self._sent = 0

    def referrer(self, n: int) -> str:
        return f"https://t.example/{self.tag}/{n}"

    def start(self) -> SteadyTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True)

    def answered_count(self) -> int:
        with self._lock:
            return len(self.answered)

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _pace(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = started + self._sent / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.05))
                continue
            self._pool.submit(self._visit, self._sent)
            self._sent += 1

    def _visit(self, n: int) -> None:
        referrer = self.referrer(n)
        try:
            answer = self._session().get(self.base_url + PAGES[n % len(PAGES)], timeout=10,
                                         headers={"Referer": referrer}, allow_redirects=False)
            answer.content  # noqa: B018 - the whole body: a complete answer
        except requests.RequestException as exc:
            # A web process killed mid-request: no complete answer, not counted.
            with self._lock:
                self.failed[type(exc).__name__] += 1
            return
        with self._lock:
            if answer.status_code < 500:
                self.answered.append(referrer)
            else:
                self.failed[f"HTTP {answer.status_code}"] += 1


def stored_counts(collection: Any, tag: str) -> Counter:
    """referrer -> number of website_logs documents, for one traffic tag."""
    prefix = f"https://t.example/{tag}/"
    docs = collection.find({"referrer": {"$regex": f"^{prefix}"}}, {"referrer": 1})
    return Counter(d["referrer"] for d in docs)


def answered_then_stored(base_url: str, logs: Any, answered: int = 360, rate: float = 60,
                         store_timeout: float = 90, settle: float = 0) -> tuple[set[str], Counter]:
    """Steady traffic until ``answered`` page views got their answer; once every one of them is
    stored and ``settle`` seconds more have passed (a late redelivery would then show as a
    duplicate), the answered referrers and how many times each was stored."""
    tag = uuid.uuid4().hex[:12]
    traffic = SteadyTraffic(base_url, tag, rate=rate).start()
    wait_until(lambda: traffic.answered_count() >= answered, 60, f"{answered} answered page views")
    traffic.stop()
    done = set(traffic.answered)
    wait_until(lambda: set(stored_counts(logs, tag)) >= done, store_timeout, "every answered page view stored")
    time.sleep(settle)
    return done, stored_counts(logs, tag)
