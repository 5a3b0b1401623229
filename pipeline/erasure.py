"""One learner's data: export it, erase it (plain Python + pymongo; the Django commands
``eventlog_export`` and ``eventlog_erase`` are thin wrappers).

A learner is a username, a visitor id (the ``EVENTLOG_VISITOR_COOKIE`` value), or both.
By default the visitor ids seen on the username's page views count as theirs too, so the
anonymous page views made in the same browser before they logged in go with them
(``linked=False``: only what names the username). What is theirs:

- ``website_logs`` and ``exit_link_logs``: ``visited_by`` is the username or ``visitor_id``
  one of their visitor ids;
- ``tutorial_progress_logs``: ``username``;
- ``dead_letters`` whose payload names them (``visited_by``, ``username`` or ``visitor_id``
  anywhere in it; a payload that is not JSON when it holds one of the values in quotes);
- ``stats_visits``, the rollups' per-visit documents (they hold the visit's page views and user).

Rollups stay consistent: a rollup is a pure function of the raw events of its bucket, so
after deleting, :func:`erase` recomputes every day the learner's events were in
(``pipeline.rollups.refresh_days``). Their figures change once, at erase time, to what they
would have been had the learner never visited, and no later run changes them again. The
tutorial snapshot (``stats_tutorials``) is recomputed whole by every rollup run, so it drops
the learner at the next one (EVENTLOG_ROLLUP_INTERVAL).

Events in flight when the erase runs (in a web process's spool, the broker, a browser's
offline queue, an offline package) are stored afterwards: see ``again_for`` in the erase
command and docs/retention.md.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pipeline import rollups
from pipeline.rollups import merge
from pipeline.store import DEAD_LETTERS, EXIT_LINK_LOGS, TUTORIAL_PROGRESS_LOGS, WEBSITE_LOGS

ERASURES = "erasures"  # one record per erase: when, how many documents, which days were recomputed
IDENTITY_FIELDS = ("visited_by", "username", "visitor_id")
LOCK_WAIT = 120.0  # seconds to wait for a running rollup before recomputing the days


@dataclass(frozen=True)
class Learner:
    """Whose data: a username and/or visitor ids (at least one)."""

    username: str | None = None
    visitor_ids: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.username and not self.visitor_ids:
            raise ValueError("a username or a visitor id is needed")

    @property
    def values(self) -> set[str]:
        return {v for v in (self.username, *self.visitor_ids) if v}


def find_learner(db: Any, username: str | None = None, visitor_id: str | None = None,
                 linked: bool = True) -> Learner:
    """The learner, with the visitor ids their page views carry when ``linked``."""
    ids = {visitor_id} if visitor_id else set()
    if username and linked:
        for coll in (db[WEBSITE_LOGS], db[EXIT_LINK_LOGS]):
            ids |= {d["visitor_id"] for d in coll.find({"visited_by": username}, {"visitor_id": 1})
                    if isinstance(d.get("visitor_id"), str) and d["visitor_id"]}
    return Learner(username or None, frozenset(ids))


def _queries(learner: Learner) -> dict[str, list[dict[str, Any]]]:
    """Per collection, the filters whose union is the learner's documents (no top-level $or:
    nx-27017 mis-parenthesises it)."""
    user, ids = learner.username, sorted(learner.visitor_ids)
    by_event: list[dict[str, Any]] = ([{"visited_by": user}] if user else []) + (
        [{"visitor_id": {"$in": ids}}] if ids else [])
    return {
        WEBSITE_LOGS: by_event,
        EXIT_LINK_LOGS: by_event,
        TUTORIAL_PROGRESS_LOGS: [{"username": user}] if user else [],
        rollups.STATS_VISITS: ([{"user": user}] if user else []) + ([{"vkey": {"$in": ids}}] if ids else []),
    }


def _names(value: Any, wanted: set[str], depth: int = 0) -> bool:
    """Whether ``value`` (a dead letter's payload) names one of ``wanted``: an identity field
    holding it anywhere, or, in text that is not JSON (a torn spool line), the value in quotes.

    Payloads are JSON text, which may itself hold a spool line's JSON text: strings that
    look like JSON are decoded and searched in turn."""
    if depth > 8:
        return False
    if isinstance(value, dict):
        if any(isinstance(value.get(f), str) and value[f] in wanted for f in IDENTITY_FIELDS):
            return True
        return any(_names(v, wanted, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_names(v, wanted, depth + 1) for v in value)
    if not isinstance(value, str):
        return False
    if value.lstrip()[:1] in ("{", "[", '"'):
        try:
            return _names(json.loads(value), wanted, depth + 1)
        except ValueError:
            pass
    return any(f'"{w}"' in value for w in wanted)


def _dead_letter_ids(db: Any, learner: Learner) -> list[Any]:
    """The dead letters whose payload names the learner: found by text, confirmed by parsing."""
    found: dict[Any, None] = {}
    for value in sorted(learner.values):
        for letter in db[DEAD_LETTERS].find({"raw": {"$regex": re.escape(value)}}, {"raw": 1}):
            if _names(letter.get("raw"), learner.values):
                found[letter["_id"]] = None
    return list(found)


def _matching(db: Any, learner: Learner) -> Iterator[tuple[str, dict[str, Any]]]:
    """(collection, document) for every document of the learner, each once."""
    for name, queries in _queries(learner).items():
        seen: set[Any] = set()
        for query in queries:
            for doc in db[name].find(query):
                if doc["_id"] not in seen:
                    seen.add(doc["_id"])
                    yield name, doc
    ids = _dead_letter_ids(db, learner)
    if ids:
        yield from ((DEAD_LETTERS, doc) for doc in db[DEAD_LETTERS].find({"_id": {"$in": ids}}))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # ObjectId, bytes ...


def export(db: Any, learner: Learner) -> Iterator[dict[str, Any]]:
    """Every document of the learner as JSON-ready dicts: ``{"collection": ..., "document": ...}``.

    The rollups' per-visit documents are derived from the page views exported already and
    are left out; everything a site stored about the learner is in the other four."""
    for name, doc in _matching(db, learner):
        if name != rollups.STATS_VISITS:
            yield {"collection": name, "document": _plain(doc)}


def _day_of(name: str, doc: dict[str, Any]) -> date | None:
    when = doc.get("start") if name == rollups.STATS_VISITS else doc.get("datetime")
    if isinstance(when, datetime):
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).date()
    return None


def _with_lease(db: Any, work: Callable[[], Any], sleep: Callable[[float], None]) -> Any:
    """``work()`` under the rollup lease, waiting up to LOCK_WAIT for a running rollup; None if it never came."""
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + LOCK_WAIT
    while not rollups.acquire_lock(db, owner):
        if time.monotonic() > deadline:
            return None
        sleep(2.0)
    try:
        return work()
    finally:
        rollups.release_lock(db, owner)


def _forget_visits(db: Any, starts: list[float], sleep: Callable[[float], None]) -> None:
    """Recompute the visit buckets where the deleted visits started.

    A refresh re-derives the visits of the page views it reads; the learner's page views
    are gone, so it would not touch their visits' buckets, which would go on counting
    them. (pipeline.rollups has no public call for this yet: merge's is used.)
    """
    size = rollups.BUCKET_SECONDS
    buckets = {int(start // size) * size for start in starts}
    now = datetime.now(UTC)

    def work() -> None:
        for first, last in merge.runs(buckets, size, 86400):
            merge.write_visit_range(db, first, last, size, now)

    _with_lease(db, work, sleep)


def _refresh(db: Any, days: list[date], sleep: Callable[[float], None]) -> list[str]:
    """Recompute the days (event buckets, hours, days) under the rollup lease, waiting for a running rollup."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        result = rollups.refresh_days(db, days)
        if not result.get("skipped") or time.monotonic() > deadline:
            return list(result.get("days") or [])
        sleep(2.0)


def erase(db: Any, learner: Learner, dry_run: bool = False,
          sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Delete the learner's documents, recompute the rollups of their days, record the erase.

    Returns ``{"deleted": {collection: n}, "days": [...], "recomputed": [...]}``; with
    ``dry_run`` only what would be deleted (nothing is changed).
    """
    targets: dict[str, list[Any]] = {}
    days: set[date] = set()
    starts: list[float] = []  # of the learner's visits (rollups' stats_visits)
    for name, doc in _matching(db, learner):
        targets.setdefault(name, []).append(doc["_id"])
        if name == rollups.STATS_VISITS and isinstance(doc.get("start_ts"), int | float):
            starts.append(float(doc["start_ts"]))
        day = _day_of(name, doc) if name in (WEBSITE_LOGS, EXIT_LINK_LOGS, rollups.STATS_VISITS) else None
        if day is not None:
            days.add(day)
    counts = {name: len(ids) for name, ids in targets.items()}
    day_list = sorted(days)
    if dry_run:
        return {"deleted": counts, "days": [d.isoformat() for d in day_list], "recomputed": [], "dry_run": True}
    for name, ids in targets.items():
        for start in range(0, len(ids), 1000):
            db[name].delete_many({"_id": {"$in": ids[start:start + 1000]}})
    if starts:
        _forget_visits(db, starts, sleep)
    recomputed = _refresh(db, day_list, sleep) if day_list else []
    if counts:
        # The record names nobody: it says that an erase happened, what it removed and recomputed.
        db[ERASURES].insert_one({"at": datetime.now(UTC), "deleted": counts,
                                 "days": [d.isoformat() for d in day_list]})
    return {"deleted": counts, "days": [d.isoformat() for d in day_list], "recomputed": recomputed}
