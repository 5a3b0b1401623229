"""Enrichment: turn validated raw events into the writes the store task performs.

Every write is a dict with a ``_write`` key naming what to do with it:
``page_view`` (insert into website_logs), ``page_view_merge`` (merge tracker
details into the page view the middleware recorded, or create it if the page
was served without the middleware), ``exit_link`` (insert into exit_link_logs)
and ``progress_report`` / ``progress_mark`` (tutorial_progress_logs).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pipeline.enrich.geo import GeoLocator, anonymize_ip
from pipeline.enrich.reverse import reverse_locate
from pipeline.enrich.useragent import parse_user_agent
from pipeline.events import (
    TRACKER_FIELDS,
    InvalidEvent,
    dead_letter,
    dead_letter_id,
    validate_page_view,
    validate_tracked,
)
from pipeline.privacy import anonymize_ip_or_none, round_coordinate
from pipeline.progress import InvalidReport, validate_mark, validate_report
from pipeline.urlmap import FALLBACK_EVENT_NAME, event_name_for

__all__ = ["enrich_events", "enrich_page_view", "GeoLocator", "anonymize_ip", "parse_user_agent"]


def _request_fields(doc: dict[str, Any], geo: GeoLocator | None, anonymize: bool) -> None:
    """event_name, user agent and GeoIP fields, derived in place."""
    doc["event_name"] = event_name_for(doc["path_info"])
    doc["url_mapped"] = doc["event_name"] != FALLBACK_EVENT_NAME
    doc.update(parse_user_agent(doc.get("user_agent") or ""))
    ip = doc.get("ip_address")
    doc.update(geo.locate(ip) if geo is not None else GeoLocator.EMPTY)
    doc["location_source"] = "geoip" if doc["country"] is not None else None
    if anonymize and ip:
        doc["ip_address"] = anonymize_ip(ip)


def enrich_page_view(doc: dict[str, Any], geo: GeoLocator | None, anonymize: bool = False) -> dict[str, Any]:
    """Add event_name, user-agent and location fields to a validated page view."""
    _request_fields(doc, geo, anonymize)
    doc["sources"] = [doc["source"]]
    doc["_write"] = "page_view"
    return doc


def _standalone_page_view(event: dict[str, Any]) -> dict[str, Any]:
    """The page view a tracker event stands for when no middleware record exists."""
    return {
        "path_info": event["path"],
        "visited_by": event["visited_by"],
        "user_agent": event["user_agent"],
        "ip_address": event["ip_address"],
        "datetime": event["datetime"],
        "first_time_visit": event["first_time_visit"],
        "method": "GET",
        "referrer": event["referrer"],
        "page_title": event["title"],
        "view_args": [],
        "view_kwargs": {},
        "post_data": None,
        "visitor_id": event["visitor_id"],
        "status_code": None,
        "source": event["source"],  # "js", or "offline" when a downloaded package synced it
        "site": event["site"],
        **({"package_id": event["package_id"]} if event.get("package_id") else {}),
        # Who learned offline: a field of its own, so rollups can count offline learners per day.
        **({"offline_learner": event["visited_by"]}
           if event["source"] == "offline" and event["visited_by"] != "AnonymousUser" else {}),
    }


def _tracker_merge(event: dict[str, Any], geo: GeoLocator | None, anonymize: bool,
                   precision: int = 2) -> dict[str, Any]:
    base = _standalone_page_view(event)
    _request_fields(base, geo, anonymize)
    to_set: dict[str, Any] = {}
    to_max: dict[str, Any] = {}
    kind = event["kind"]
    if kind == "js.pageview":
        to_set["page_title"] = event["title"]  # the tracker's "title" is the page's title
        for name in TRACKER_FIELDS:
            if name != "page_title" and event.get(name) is not None:
                to_set[name] = event[name]
    elif kind == "js.visit_end":
        to_max["visit_duration"] = round(event["duration_ms"] / 1000.0, 1)
    elif kind == "js.location":
        to_set.update(reverse_locate(round_coordinate(event["latitude"], precision),
                                     round_coordinate(event["longitude"], precision)))
        to_set["location_source"] = "browser"
        to_set["location_accuracy"] = event.get("accuracy")
    # MongoDB refuses one field in two operators: what is set wins over the insert-only default.
    on_insert = {k: v for k, v in base.items() if k not in to_set and k not in to_max}
    return {"_write": "page_view_merge", "_id": event["page_view_id"], "set": to_set, "max": to_max,
            "set_on_insert": on_insert, "source": event["source"]}


def _exit_link(event: dict[str, Any], anonymize: bool) -> dict[str, Any]:
    ip = event["ip_address"]
    return {
        "_write": "exit_link",
        "_id": event["event_id"],
        "exit_link": event["url"],
        "path_info": event["path"],
        "page_view_id": event["page_view_id"],
        "datetime": event["datetime"],
        "visited_by": event["visited_by"],
        "visitor_id": event["visitor_id"],
        "ip_address": anonymize_ip(ip) if anonymize and ip else ip,
        "site": event["site"],
        "source": event["source"],
    }


def _progress(raw: dict[str, Any]) -> dict[str, Any]:
    """A learner's report or mark, validated; the store applies it atomically."""
    try:
        if raw["kind"] == "progress.report":
            validate_report(raw)
        else:
            validate_mark(raw)
    except InvalidReport as exc:
        raise InvalidEvent(str(exc)) from None
    fields = {k: v for k, v in raw.items() if k != "kind"}
    return {"_write": raw["kind"].replace(".", "_"), "event": fields}


def _decode(raw: Any) -> Any:
    """A spool line shipped as text is parsed here, in the worker."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidEvent("spool line is not valid JSON (torn or corrupt)") from None


def _enrich_one(raw: Any, geo: GeoLocator | None, anonymize: bool, precision: int = 2) -> dict[str, Any]:
    raw = _decode(raw)
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kind is None:
        return enrich_page_view(validate_page_view(raw), geo, anonymize)
    if kind in ("progress.report", "progress.mark"):
        return _progress(raw)
    event = validate_tracked(raw)
    if event["kind"] == "js.exit":
        return _exit_link(event, anonymize)
    return _tracker_merge(event, geo, anonymize, precision)


def _without_full_ip(raw: Any) -> Any:
    """``raw`` (a spool line or a dict) with its ip_address anonymised, for a dead letter."""
    event = raw
    if isinstance(raw, str):
        try:
            event = json.loads(raw)
        except ValueError:
            return raw  # not JSON: nothing to find an address in
    if not isinstance(event, dict) or not isinstance(event.get("ip_address"), str):
        return raw
    event = {**event, "ip_address": anonymize_ip_or_none(event["ip_address"])}
    return json.dumps(event, ensure_ascii=False) if isinstance(raw, str) else event


def _dead_letter(raw: Any, reason: str, anonymize: bool) -> dict[str, Any]:
    if not anonymize:
        return dead_letter(raw, reason, stage="enrich")
    # A line spooled before anonymisation was switched on keeps only the anonymised address;
    # the _id stays that of the line as shipped, which the spool's check looks for.
    letter = dead_letter(_without_full_ip(raw), reason, stage="enrich")
    letter["_id"] = dead_letter_id(raw)
    return letter


def _event_time(write: dict[str, Any]) -> Any:
    """The datetime a write files its event under (None for progress, which does not expire)."""
    if write["_write"] == "page_view_merge":
        return write["set_on_insert"].get("datetime")
    return write.get("datetime")


def _expired_letter(raw: Any) -> dict[str, Any]:
    # Under the id of the line as shipped, so the spool's check counts it as done; the event
    # itself is not kept (it is past retention).
    # Stage "retention": nothing to replay (deadletters.py leaves unknown stages alone).
    letter = dead_letter("", "older than EVENTLOG_RETENTION_DAYS: not stored", stage="retention")
    letter["_id"] = dead_letter_id(raw)
    return letter


def enrich_events(
    raw_events: list[Any], geo: GeoLocator | None, anonymize: bool = False, coordinate_precision: int = 2,
    expired_before: datetime | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate and enrich a micro-batch: (writes, dead letters).

    ``coordinate_precision``: decimals kept of browser-reported positions (the beacon rounds
    them already; this covers other senders and lines spooled before). ``expired_before``:
    events older than this (pipeline.retention's cutoff) are not stored: their day's raw
    events are gone, and storing one would make the rollups recompute that day from it alone."""
    writes: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    for raw in raw_events:
        try:
            write = _enrich_one(raw, geo, anonymize, coordinate_precision)
        except InvalidEvent as exc:
            dead.append(_dead_letter(raw, str(exc), anonymize))
            continue
        when = _event_time(write) if expired_before is not None else None
        if isinstance(when, datetime) and when < expired_before:
            dead.append(_expired_letter(raw))
        else:
            writes.append(write)
    return writes, dead
