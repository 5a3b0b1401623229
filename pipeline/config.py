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
from urllib.parse import urlsplit

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
    # Zero the host part of client IPs at the hook (pipeline/privacy.py), before they reach the
    # spool, the broker, dead letters or MongoDB. On by default: see docs/retention.md.
    anonymize_ip: bool = True
    # Bytes a spool directory may hold (0: unbounded); beyond it new events are dropped and
    # counted (docs/retention.md: why the newest).
    spool_max_bytes: int = 1 << 30
    # Days raw events (website_logs, exit_link_logs, dead_letters) are kept; 0 keeps them for
    # ever. Rollups are kept whatever this says (pipeline/retention.py).
    retention_days: int = 395
    # Decimals kept of browser-reported latitude/longitude (2: about 1 km).
    coordinate_precision: int = 2
    ship_batch: int = 500  # events per Celery message
    ship_interval: int = 200  # ms between shipper passes
    # Reverse proxies in front of the site: addresses or CIDRs (pipeline/proxies.py); empty: none.
    trusted_proxies: tuple[str, ...] = ()
    skip_paths: tuple[str, ...] = DEFAULT_SKIP_PATHS
    post_data_max: int = 4096  # bytes of redacted POST data kept per event
    # Redaction (pipeline/redact*.py, docs/privacy.md): more query parameter names whose values
    # are never stored, URL pattern names or path prefixes stored only as their route, and the
    # POST fields kept at all (empty: every field, redacted).
    redact_query_params: tuple[str, ...] = ()
    route_only_paths: tuple[str, ...] = ()
    post_fields_allow: tuple[str, ...] = ()
    visibility_timeout: int = 300  # seconds (Redis transport redelivery)
    # Seconds after shipping when the shipper checks that a segment's events reached MongoDB
    # and spools again the ones that did not (pipeline/reconcile.py); 0 turns the check off.
    # Longer than the visibility timeout: a killed worker's messages come back after it.
    reconcile_after: float = 360.0
    # health/ answers 503 "lagging" when an event has waited longer than this in any stage.
    health_max_age: float = 60.0
    # Bearer token that shows health/'s details to a monitor (staff see them too); empty: staff only.
    health_token: str = ""
    # Seconds a web process reuses its last health figures: a burst of probes costs one check.
    health_cache: float = 5.0
    visitor_cookie: str = "eventlog_vid"
    beacon_max_bytes: int = 8192  # request body limit of the tracker's endpoint
    beacon_rate: str = "600/m"  # tracker events per client IP ("N/s|m|h|d"; a request counts at least one)
    beacon_bytes_rate: str = "1000000/m"  # tracker request bytes per client IP, same syntax
    tracker_geolocation: bool = False  # ask the browser for its position (opt-in per site)
    respect_dnt: bool = True  # honour Do Not Track / Global Privacy Control (tracker and middleware)
    dnt_mode: str = "anonymous"  # middleware under DNT/GPC: "anonymous" (no IP, visitor, cookie) or "skip"
    tracker_queue_max: int = 200  # events a browser keeps while offline (oldest dropped)
    # Dotted path of the site's function (foss, language) -> [{"title", "length", "url"}] | None
    progress_catalogue: str = ""
    pending_seconds: int = 120  # how long a learner's own unstored progress is overlaid on reads
    rollup_interval: float = 60.0  # seconds between beat's incremental rollups
    visit_gap_minutes: float = 30.0  # a visit ends after this long without a page view (rollups)
    # RabbitMQ only: "quorum" (replicated, fsynced before the publisher confirm, delivery
    # limit) is the production recommendation; "classic" stays the default because a
    # queue's type is fixed when it is declared (see deploy/README.md). Ignored on Redis.
    queue_type: str = "classic"
    # Quorum queues: deliveries of one message before it goes to eventlog.dead. Every
    # return counts (a worker restart, a cut connection, a failed store), hence not 3.
    delivery_limit: int = 20
    # Sites and subdomains (pipeline/sites.py, docs/offline.md): "host[:port]=name" entries naming
    # the `site` of events made on that host; unlisted hosts are named by their normalised host.
    sites: tuple[str, ...] = ()
    # Other origins ("https://forums.example.org") whose pages may run the tracker against this
    # site's collect/ (CORS); the second list may also send cookies (the visitor id, the session).
    tracker_origins: tuple[str, ...] = ()
    tracker_credential_origins: tuple[str, ...] = ()
    collect_url: str = ""  # absolute collect/ URL the tracker posts to ("": this site's own)
    visitor_cookie_domain: str = ""  # e.g. ".example.org": one visitor id on every subdomain
    # Offline packages (django_hook/offline/): how long a package's sync token is valid, how long
    # after that a sync is still accepted (and the token renewed), and the browser's queue bound.
    offline_token_max_age: int = 180 * 24 * 3600
    offline_token_grace: int = 180 * 24 * 3600
    offline_queue_max: int = 5000
    offline_site_url: str = ""  # base URL packages sync to ("": the URL they were downloaded from)
    web_port: int = 8000
    flower_port: int = 5555


def _coerce(raw: Any, default: Any) -> Any:
    if not isinstance(raw, str):
        if isinstance(default, tuple) and isinstance(raw, Mapping):  # EVENTLOG_SITES as a dict
            return tuple(f"{k}={v}" for k, v in raw.items())
        if isinstance(default, tuple):  # a Django setting may be a list, or one number (a proxy count)
            return (str(raw),) if isinstance(raw, (int, float)) else tuple(raw)
        return raw
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


def safe_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: for messages and logs."""
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:  # a malformed netloc: show nothing of it
        return f"{parts.scheme}://…"
    if password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()
