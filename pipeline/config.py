"""EVENTLOG_* settings: one place that knows every name and default.

Values come from the environment; a Django site may override any of them in its
settings module (django_hook passes those in as ``overrides``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_SKIP_PATHS = (
    "/static/",
    "/media/",
    "/favicon.ico",
    "/robots.txt",
    "/health/",
    "/healthz",
    "/eventlog/collect/",
    "/eventlog/health/",
)


@dataclass(frozen=True)
class Settings:
    broker_url: str = "redis://127.0.0.1:6379/0"
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "logs"
    # Events per bulk write. nx-27017 and MongoDB both like writes of a few hundred
    # to a few thousand documents; 1000 keeps one write well under a second.
    batch_size: int = 1000
    flush_interval: float = 1.0  # seconds
    geoip_city_db: str = ""
    spool_dir: str = os.path.join(tempfile.gettempdir(), "eventlog-spool")
    anonymize_ip: bool = False
    ship_batch: int = 500  # events per Celery message
    ship_interval: int = 200  # ms between shipper passes
    trusted_proxies: int = 0
    skip_paths: tuple[str, ...] = DEFAULT_SKIP_PATHS
    post_data_max: int = 4096  # bytes of redacted POST data kept per event
    visibility_timeout: int = 300  # seconds (Redis transport redelivery)
    # Seconds after shipping when the shipper checks that a segment's events reached MongoDB
    # and spools again the ones that did not (pipeline/reconcile.py); 0 turns the check off.
    # Longer than the visibility timeout: a killed worker's messages come back after it.
    reconcile_after: float = 360.0
    # health/ answers 503 "lagging" when an event has waited longer than this in any stage.
    health_max_age: float = 60.0
    visitor_cookie: str = "eventlog_vid"
    beacon_max_bytes: int = 8192  # request body limit of the tracker's endpoint
    beacon_rate: str = "600/m"  # per client IP (django-ratelimit syntax)
    tracker_geolocation: bool = False  # ask the browser for its position (opt-in per site)
    respect_dnt: bool = True  # tracker stays silent under Do Not Track / Global Privacy Control
    tracker_queue_max: int = 200  # events a browser keeps while offline (oldest dropped)
    # Dotted path of the site's function (foss, language) -> [{"title", "length", "url"}] | None
    progress_catalogue: str = ""
    pending_seconds: int = 120  # how long a learner's own unstored progress is overlaid on reads
    rollup_interval: float = 60.0  # seconds between beat's incremental rollups
    web_port: int = 8000
    flower_port: int = 5555


def _coerce(raw: Any, default: Any) -> Any:
    if not isinstance(raw, str):
        return tuple(raw) if isinstance(default, tuple) else raw
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, tuple):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build Settings from EVENTLOG_* environment variables, then ``overrides``.

    ``overrides`` uses the same EVENTLOG_* names (as a Django settings module would).
    A value that cannot be read raises ValueError naming the variable.
    """
    values = {}
    for f in fields(Settings):
        name = "EVENTLOG_" + f.name.upper()
        raw = os.environ.get(name)
        if overrides is not None and name in overrides:
            raw = overrides[name]
        if raw is None:
            continue
        try:
            values[f.name] = _coerce(raw, f.default)
        except ValueError as exc:
            raise ValueError(f"{name}={raw!r} is not a valid {type(f.default).__name__}") from exc
    return Settings(**values)
