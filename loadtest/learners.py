"""The demo's learners watch videos: what demo/static/demo/player.js sends, for the load generator.

A logged-in learner on a watch page usually plays the video: from where the
page says to resume (``data-resume``), some minutes or to the end, now and then
from the start again (a rewatch) or skipping ahead (a seek: the minutes jumped
over are not watched). The player reports to ``POST progress/`` when the minute
changes and on pause or end, with the minutes played since its last report; a
learner sometimes presses Mark complete (rarely Mark incomplete) afterwards,
which is ``POST progress/mark/``. The bodies, headers (the page's CSRF token as
``X-CSRFToken``, JSON, the page's Origin) and the session cookie are the
player's; only the waiting is left out: the generator moves at machine speed.

:class:`ProgressLog` keeps what the server accepted per (learner, course,
language, tutorial), so the summary can check that ``tutorial_progress_logs``
holds every minute and the last mark of this run (:func:`missing_progress`).
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

PLAY_SHARE = 0.85  # of a learner's watch page views: the video is played
TO_THE_END_SHARE = 0.45  # of played videos: watched to the end
REWATCH_SHARE = 0.15  # of played videos: from the start again, whatever the resume position
SEEK_SHARE = 0.15  # of played videos: a jump ahead of a minute or more halfway
MARK_COMPLETE_SHARE = 0.10  # of played videos
MARK_INCOMPLETE_SHARE = 0.02
REQUEST_TIMEOUT = 15.0

Key = tuple[str, str, str, str]  # (username, foss, language, tutorial)

_ATTR = re.compile(r'\bdata-(progress-url|mark-url|csrf|resume)="([^"]*)"')


@dataclass(frozen=True)
class Player:
    """What the watch page gives player.js (its video element's data attributes)."""

    progress_url: str
    mark_url: str
    csrf: str
    resume: int


def read_player(page_html: str) -> Player | None:
    """The player's settings from a watch page; None when the page has no progress (anonymous)."""
    attrs = {name: html.unescape(value) for name, value in _ATTR.findall(page_html)}
    if not attrs.get("progress-url") or not attrs.get("csrf"):
        return None
    resume = attrs.get("resume", "0")
    return Player(attrs["progress-url"], attrs["mark-url"], attrs["csrf"], int(resume) if resume.isdigit() else 0)


def total_minutes(length: float) -> int:
    return max(1, math.ceil(length / 60))


def playback_reports(start: float, stop: float, length: float) -> list[tuple[float, list[int]]]:
    """(position, minutes) of the reports player.js sends while playing from ``start`` to ``stop``.

    One when the minute changes (the minutes played since the last report: the
    one left and the one entered) and one at the pause or end.
    """
    last = total_minutes(length) - 1
    first, final = min(int(start // 60), last), min(int(stop // 60), last)
    reports: list[tuple[float, list[int]]] = []
    played = {first}
    for minute in range(first + 1, final + 1):
        played.add(minute)
        reports.append((minute * 60.0 + 0.25, sorted(played)))
        played = {minute}
    reports.append((round(stop, 2), sorted(played)))
    return reports


def viewing_plan(resume: int, length: float, rng: random.Random) -> list[tuple[float, float]]:
    """The stretches (start, stop) in seconds a learner plays in one watch page view."""
    start = 0.0 if resume >= length - 1 or rng.random() < REWATCH_SHARE else float(resume)
    stop = length if rng.random() < TO_THE_END_SHARE else min(length, start + rng.uniform(30, 4 * 60))
    if stop - start > 150 and rng.random() < SEEK_SHARE:
        jump_from = start + (stop - start) / 3
        jump_to = min(stop - 1, jump_from + rng.uniform(60, 120))
        return [(start, jump_from), (jump_to, stop)]
    return [(start, stop)]


def _id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


@dataclass
class ProgressLog:
    """Progress calls sent and what the server accepted, thread-safe."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    plays: int = 0
    reports: int = 0
    marks: Counter[bool] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    minutes: dict[Key, set[int]] = field(default_factory=dict)  # accepted minutes per tutorial
    visits: dict[Key, set[str]] = field(default_factory=dict)  # accepted visit ids per tutorial
    last_mark: dict[Key, bool] = field(default_factory=dict)  # the newest accepted mark

    def answered(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1

    def report(self, key: Key, minutes: Iterable[int], visit_id: str) -> None:
        with self.lock:
            self.reports += 1
            self.minutes.setdefault(key, set()).update(minutes)
            self.visits.setdefault(key, set()).add(visit_id)

    def mark(self, key: Key, completed: bool) -> None:
        with self.lock:
            self.marks[completed] += 1
            self.last_mark[key] = completed

    def played(self) -> None:
        with self.lock:
            self.plays += 1

    def failed(self) -> None:
        with self.lock:
            self.errors += 1


class Learning:
    """Plays videos for learners through the progress API, as the demo's player does."""

    def __init__(self, base_url: str, log: ProgressLog) -> None:
        self.base_url = base_url
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.log = log

    def _post(self, session: requests.Session, player: Player, url: str, body: dict[str, Any]) -> bool:
        """One fetch() of player.js: JSON, the page's CSRF token, same-origin credentials."""
        headers = {"Content-Type": "application/json", "X-CSRFToken": player.csrf, "Origin": self.origin,
                   "Accept": "*/*"}
        body = {**body, "ts": int(time.time() * 1000)}
        try:
            answer = session.post(self.base_url + url, data=json.dumps(body), headers=headers,
                                  timeout=REQUEST_TIMEOUT)
        except requests.RequestException:
            self.log.failed()
            return False
        self.log.answered(answer.status_code)
        return answer.status_code == 200

    def watch(self, session: requests.Session, page_html: str, username: str, tutorial: Mapping[str, Any],
              rng: random.Random) -> None:
        """Maybe play the video of a watch page (``tutorial``: foss, language, title, length), maybe mark it."""
        player = read_player(page_html)
        if player is None or rng.random() >= PLAY_SHARE:
            return
        self.log.played()
        key: Key = (username, tutorial["foss"], tutorial["language"], tutorial["title"])
        names = {"foss": key[1], "language": key[2], "tutorial": key[3]}
        visit_id = _id(rng)  # one per page load, as the player makes it
        for start, stop in viewing_plan(player.resume, tutorial["length"], rng):
            for position, minutes in playback_reports(start, stop, tutorial["length"]):
                body = {**names, "position": position, "minutes": minutes, "visit_id": visit_id,
                        "report_id": _id(rng)}
                if self._post(session, player, player.progress_url, body):
                    self.log.report(key, minutes, visit_id)
        roll = rng.random()
        if roll < MARK_COMPLETE_SHARE + MARK_INCOMPLETE_SHARE:
            completed = roll < MARK_COMPLETE_SHARE
            if self._post(session, player, player.mark_url, {**names, "completed": completed}):
                self.log.mark(key, completed)


def missing_progress(log: ProgressLog, stored: Iterable[Mapping[str, Any]]) -> list[str]:
    """What the run's accepted progress calls left out of ``tutorial_progress_logs`` (empty: all there).

    A stored document must hold every minute and visit of the run (it may hold
    more, from earlier runs) and, where the learner marked it, that mark.
    """
    docs = {(d.get("username"), d.get("foss"), d.get("language"), d.get("tutorial")): d for d in stored}
    missing: list[str] = []
    for key, minutes in log.minutes.items():
        doc = docs.get(key)
        if doc is None:
            missing.append(f"{key}: no document")
        elif not minutes <= set(doc.get("minutes_watched") or []):
            missing.append(f"{key}: minutes {sorted(minutes - set(doc.get('minutes_watched') or []))}")
        elif not log.visits[key] <= set(doc.get("visit_ids") or []):
            missing.append(f"{key}: visits")
    for key, completed in log.last_mark.items():
        doc = docs.get(key)
        if doc is None or not doc.get("manual") or bool(doc.get("completed")) != completed:
            missing.append(f"{key}: mark {completed}")
    return missing


@dataclass
class ProgressStored:
    """What tutorial_progress_logs holds of the run's accepted progress calls."""

    tutorials: int  # (learner, tutorial) documents the run touched
    completed: int  # of them, completed now
    missing: list[str]
    waited: float

    @property
    def complete(self) -> bool:
        return not self.missing


def _touched(db: Any, log: ProgressLog) -> list[dict[str, Any]]:
    from pipeline.store import TUTORIAL_PROGRESS_LOGS

    learners = sorted({key[0] for key in (*log.minutes, *log.last_mark)})
    fields = {"_id": 0, "username": 1, "foss": 1, "language": 1, "tutorial": 1, "minutes_watched": 1,
              "visit_ids": 1, "manual": 1, "completed": 1}
    return list(db[TUTORIAL_PROGRESS_LOGS].find({"username": {"$in": learners}}, fields)) if learners else []


def wait_for_progress(db: Any, log: ProgressLog, timeout: float) -> ProgressStored:
    """Poll once a second until every accepted report and mark is in tutorial_progress_logs, or time is up."""
    began = time.monotonic()
    keys = set(log.minutes) | set(log.last_mark)
    while True:
        docs = _touched(db, log)
        missing = missing_progress(log, docs)
        waited = time.monotonic() - began
        if not missing or waited >= timeout:
            ours = [d for d in docs if (d["username"], d["foss"], d["language"], d["tutorial"]) in keys]
            return ProgressStored(len(keys), sum(1 for d in ours if d.get("completed")), missing, waited)
        time.sleep(1)


def summary_lines(log: ProgressLog, stored: ProgressStored) -> list[str]:
    """The demo summary's lines about the learners' videos."""
    learners = {key[0] for key in log.minutes}
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(log.statuses.items())) or "none"
    verdict = "all stored" if stored.complete else f"NOT all stored: {len(stored.missing)} missing"
    lines = [
        f"videos           {log.plays} played by {len(learners)} learners: {log.reports} progress reports, "
        f"{log.marks[True]} marked complete, {log.marks[False]} incomplete (HTTP {statuses}"
        + (f", {log.errors} without an answer" if log.errors else "") + ")",
        f"progress stored  {stored.tutorials} learner tutorials hold every minute and mark sent ({verdict}; "
        f"waited {stored.waited:.1f} s); {stored.completed} of them completed",
    ]
    lines += [f"                 missing {m}" for m in stored.missing[:5]]
    return lines
