"""End-to-end check of shipped spool lines: which events never reached MongoDB.

Why: the broker's acknowledgements cover the hops, not the whole path. kombu's Redis
transport takes a message off the queue (BRPOP) before it records it as unacknowledged,
so a worker killed in between (SIGKILL, OOM, power) loses that message with nobody
holding it (the same gap exists in any BRPOP consumer). The spool is the only place
that still has every event the site answered for, so the shipper keeps each shipped
segment until the events in it are found in MongoDB (or in dead_letters), and spools
again whatever is missing. Events are idempotent, so a false "missing" costs a
duplicate delivery, never a duplicate document.

A line is checked by what its event writes (pipeline.enrich):
- a page view (middleware): website_logs document ``event_id`` whose ``sources`` has its source;
- tracker ``js.pageview`` / ``js.location``: the page view ``page_view_id`` has ``js`` in ``sources``;
- tracker ``js.visit_end``: that page view's ``visit_duration`` is at least this one;
- tracker ``js.exit``: exit_link_logs document ``event_id``;
- progress reports and marks: the learner's tutorial document holds the report's visit
  and minutes, or a mark at least as recent;
- and anything that was dead-lettered (enrich: by the line's hash; store: by event id).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from pipeline import progress
from pipeline.events import dead_letter_id
from pipeline.store import DEAD_LETTERS, EXIT_LINK_LOGS, TUTORIAL_PROGRESS_LOGS, WEBSITE_LOGS

CHUNK = 500  # ids per $in query


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _parse(line: str) -> dict[str, Any] | None:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def _found(collection: Any, ids: list[Any], projection: dict[str, int]) -> dict[Any, dict[str, Any]]:
    found: dict[Any, dict[str, Any]] = {}
    for chunk in _chunks(list(dict.fromkeys(ids))):
        for doc in collection.find({"_id": {"$in": chunk}}, projection):
            found[doc["_id"]] = doc
    return found


def _page_view_stored(event: dict[str, Any], views: dict[Any, dict[str, Any]]) -> bool:
    kind = event.get("kind")
    doc = views.get(event.get("page_view_id") if kind else event.get("event_id"))
    if doc is None:
        return False
    sources = doc.get("sources") or [doc.get("source")]
    if kind is None:
        return event.get("source") in sources
    if kind == "js.visit_end":
        try:
            wanted = round(float(event["duration_ms"]) / 1000.0, 1)
        except (KeyError, TypeError, ValueError):
            return True  # not a valid event: enrich dead-letters it (checked below)
        return (doc.get("visit_duration") or 0) >= wanted
    return event.get("source", "js") in sources  # "offline" for a synced package's events


def _progress_stored(collection: Any, event: dict[str, Any]) -> bool:
    try:
        if event["kind"] == "progress.report":
            report = progress.validate_report(event)
            doc = collection.find_one(report.key, {"visit_ids": 1, "minutes_watched": 1})
            return doc is not None and report.visit_id in (doc.get("visit_ids") or []) and \
                set(report.minutes) <= set(doc.get("minutes_watched") or [])
        mark = progress.validate_mark(event)
        doc = collection.find_one(mark.key, {"mark_order": 1})
        stored = (doc or {}).get("mark_order")
        return isinstance(stored, str) and stored >= progress.mark_order(mark.at, mark.completed)
    except (progress.InvalidReport, KeyError, TypeError):
        return True  # invalid: enrich dead-letters it (checked below)


def missing_lines(db: Any, lines: list[str]) -> list[str]:
    """The spool lines whose event is neither stored nor dead-lettered."""
    return _not_dead_lettered(db, unstored(db, lines))


def unstored(db: Any, lines: list[str]) -> list[tuple[str, dict[str, Any] | None]]:
    """The spool lines whose event is not stored (dead letters aside), each with its parsed event.

    Also what `eventlog dead-letters replay` asks of a replayed letter (pipeline.deadletters).
    """
    events = [_parse(line) for line in lines]
    view_ids = [e.get("page_view_id") if e.get("kind") else e.get("event_id")
                for e in events if e and (e.get("kind") is None or str(e.get("kind")).startswith("js."))
                and e.get("kind") != "js.exit"]
    views = _found(db[WEBSITE_LOGS], [i for i in view_ids if isinstance(i, str)],
                   {"sources": 1, "source": 1, "visit_duration": 1})
    exits = _found(db[EXIT_LINK_LOGS], [e.get("event_id") for e in events
                                        if e and e.get("kind") == "js.exit" and isinstance(e.get("event_id"), str)],
                   {"_id": 1})
    unverified: list[tuple[str, dict[str, Any] | None]] = []
    for line, event in zip(lines, events, strict=True):
        kind = event.get("kind") if event else None
        if event is None:
            stored = False
        elif kind == "js.exit":
            stored = event.get("event_id") in exits
        elif kind in ("progress.report", "progress.mark"):
            stored = _progress_stored(db[TUTORIAL_PROGRESS_LOGS], event)
        else:
            stored = _page_view_stored(event, views)
        if not stored:
            unverified.append((line, event))
    return unverified


def _not_dead_lettered(db: Any, unverified: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
    if not unverified:
        return []
    # Enrich dead-letters the line as shipped (text), under a hash of it.
    letter_ids = [dead_letter_id(line) for line, _ in unverified]
    lettered = set(_found(db[DEAD_LETTERS], letter_ids, {"_id": 1}))
    event_ids = [e.get("event_id") for _, e in unverified if e and isinstance(e.get("event_id"), str)]
    refused = {d["event_id"] for chunk in _chunks(event_ids)
               for d in db[DEAD_LETTERS].find({"event_id": {"$in": chunk}}, {"event_id": 1})}
    return [line for (line, event), letter_id in zip(unverified, letter_ids, strict=True)
            if letter_id not in lettered and not (event and event.get("event_id") in refused)]


def pipeline_has_passed(db: Any, shipped_at: datetime) -> bool:
    """Whether MongoDB holds a page view made after ``shipped_at``: the pipeline has moved
    past what was shipped then (so a missing event is lost, not late). False while the
    store is behind or away, which keeps a backlog from being spooled a second time."""
    return db[WEBSITE_LOGS].find_one({"datetime": {"$gt": shipped_at}}, {"_id": 1}) is not None
