"""Enrichment: turn a validated raw page view into a website_logs document."""

from __future__ import annotations

from typing import Any

from pipeline.enrich.geo import GeoLocator, anonymize_ip
from pipeline.enrich.useragent import parse_user_agent
from pipeline.events import InvalidEvent, dead_letter, validate_page_view
from pipeline.urlmap import FALLBACK_EVENT_NAME, event_name_for

__all__ = ["enrich_events", "enrich_page_view", "GeoLocator", "anonymize_ip", "parse_user_agent"]


def enrich_page_view(
    doc: dict[str, Any], geo: GeoLocator | None, anonymize: bool = False
) -> dict[str, Any]:
    """Add event_name, user-agent and location fields to a validated page view."""
    doc["event_name"] = event_name_for(doc["path_info"])
    doc["url_mapped"] = doc["event_name"] != FALLBACK_EVENT_NAME
    doc.update(parse_user_agent(doc.get("user_agent") or ""))
    ip = doc.get("ip_address")
    doc.update(geo.locate(ip) if geo is not None else GeoLocator.EMPTY)
    doc["location_source"] = "geoip" if doc["country"] is not None else None
    if anonymize and ip:
        doc["ip_address"] = anonymize_ip(ip)
    return doc


def enrich_events(
    raw_events: list[Any], geo: GeoLocator | None, anonymize: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate and enrich a micro-batch: (documents, dead letters)."""
    docs: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    for raw in raw_events:
        try:
            doc = validate_page_view(raw)
        except InvalidEvent as exc:
            dead.append(dead_letter(raw, str(exc), stage="enrich"))
            continue
        docs.append(enrich_page_view(doc, geo, anonymize))
    return docs, dead
