"""Names, dimensions and small helpers shared by the rollup modules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

WEBSITE_LOGS = "website_logs"
EXIT_LINK_LOGS = "exit_link_logs"
TUTORIAL_PROGRESS_LOGS = "tutorial_progress_logs"
STATS_DAILY = "stats_daily"  # one per day, all sites together (_id = "YYYY-MM-DD")
STATS_DAILY_SITE = "stats_daily_site"  # one per (day, site)
STATS_HOURLY = "stats_hourly"  # one per (hour, site): merge of its buckets
STATS_BUCKETS = "stats_buckets"  # event figures per (time bucket, site)
STATS_BUCKET_ROWS = "stats_bucket_rows"  # the compact rows of the events of a bucket (what it is counted from)
STATS_VISIT_BUCKETS = "stats_visit_buckets"  # visit figures per (visit-start bucket, site)
STATS_VISITS = "stats_visits"  # one per visit
STATS_TUTORIALS = "stats_tutorials"
STATS_WATERMARKS = "stats_watermarks"
STATS_STAMP = "stats"  # stats_watermarks document whose "run" changes whenever a run wrote stats documents
STATS_DAILY_DIM = "stats_daily_dim"  # no longer written (dimensions live in stats_daily); dropped by runs

ANONYMOUS = "AnonymousUser"
WATCH_EVENT = "event.video.watch"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
TOP_N = 100  # keys per day and dimension kept in the day documents
FLOW_TOP = 1000  # distinct flows per day kept in the day documents
FLOW_STEPS = 4  # entry page + the next 3
BUCKET_SECONDS = 120  # see the package docstring: why 2 minutes
HOUR = 3600
DAY = 86400
DURATION_BOUNDARIES = [0, 10, 30, 60, 180, 600]
DURATION_LABELS = ["0-10s", "10-30s", "30-60s", "1-3m", "3-10m", "10m+"]
COURSE_BUCKETS = ["0-25", "25-50", "50-75", "75-100"]
KEY_SEP = "\x1f"
MAX_REF = 200
# Not {"$ne": True}: on nx-27017, $ne drops documents missing the field once $project follows.
HUMAN: dict[str, Any] = {"is_bot": {"$nin": [True]}}


@dataclass(frozen=True)
class Dimension:
    """A breakdown of page views (or exit links): count per value of ``key`` (plus ``extras``)."""

    name: str
    key: str  # field path of the key
    extras: tuple[tuple[str, str], ...] = ()  # (output name, field path)
    bots: bool = False  # counts bots only (else people only)
    watch_only: bool = False  # counts video watch page views only
    collection: str = WEBSITE_LOGS
    present_only: bool = False  # page views without the field are not counted (no "None" row)

    @property
    def parts(self) -> tuple[str, ...]:
        return (self.key, *(path for _, path in self.extras))


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("event", "event_name"),
    Dimension("path", "path_info"),
    Dimension("country", "country", (("country_code", "country_code"),)),
    Dimension("region", "region", (("country", "country"), ("country_code", "country_code"))),
    Dimension("city", "city", (("region", "region"), ("country", "country"), ("country_code", "country_code"))),
    Dimension("browser", "browser_family"),
    Dimension("os", "os_family"),
    Dimension("device", "device_family"),
    Dimension("device_type", "device_type"),
    Dimension("referrer", "referrer"),  # folded to the host
    Dimension("bot", "browser_family", bots=True),
    Dimension("tutorial", "view_kwargs.tutorial",
              (("foss", "view_kwargs.foss"), ("language", "view_kwargs.language")), watch_only=True),
    Dimension("course", "view_kwargs.foss", (("language", "view_kwargs.language"),), watch_only=True),
    Dimension("exit_link", "exit_link", collection=EXIT_LINK_LOGS),
    # Last, so rows stored before they existed keep their alignment (docs/offline.md):
    Dimension("source", "source"),  # middleware / js / offline
    # set only on page views synced from a learner's package:
    Dimension("offline_learner", "offline_learner", present_only=True),
    # true on page views whose browser sent Do Not Track or Global Privacy Control (docs/security.md):
    Dimension("dnt", "dnt", present_only=True),
)
DIMENSION_EXTRAS: dict[str, tuple[str, ...]] = {d.name: tuple(n for n, _ in d.extras) for d in DIMENSIONS}
DIMENSION_EXTRAS["duration"] = ()


def day_str(day: date) -> str:
    return day.isoformat()


def as_utc(value: datetime) -> datetime:
    """BSON dates come back naive unless the client is tz_aware; both mean UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_date(value: date | datetime | str) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value)
    if isinstance(value, datetime):
        return as_utc(value).date()
    return value


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def days_between(first: date, last: date) -> Iterator[date]:
    current = first
    while current <= last:
        yield current
        current += timedelta(days=1)


def epoch(value: datetime) -> float:
    return as_utc(value).timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def floor_to(seconds: float, size: int) -> int:
    return int(seconds // size * size)


def day_of_epoch(seconds: float) -> str:
    return from_epoch(seconds).date().isoformat()


def ref(parts: tuple[Any, ...] | list[Any]) -> str:
    """Identity of a key (with its extras) inside its dimension, usable in an _id."""
    texts = ["" if p is None else str(p) for p in parts]
    text = "|".join(texts)
    if len(text) > MAX_REF or any("|" in t for t in texts) or (len(parts) == 1 and parts[0] is None):
        return "#" + hashlib.sha1(json.dumps(list(parts), default=str).encode()).hexdigest()[:20]
    return text


def referrer_host(referrer: Any) -> str:
    """Host part of a referrer; "(direct)" when there is none."""
    if not referrer:
        return "(direct)"
    try:
        host = urlsplit(str(referrer)).hostname
    except ValueError:
        host = None
    return host or "(other)"


def duration_label(seconds: float) -> str:
    """Bucket label (one of DURATION_LABELS) of a duration in seconds."""
    for upper, label in zip(DURATION_BOUNDARIES[1:], DURATION_LABELS, strict=False):
        if seconds < upper:
            return label
    return DURATION_LABELS[-1]


def key_part(value: Any) -> Any:
    """A key value as the rollups store it: None for missing or empty, text otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def dotted(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def site_of(doc: dict[str, Any]) -> str:
    """The event's site; "" for events stored without one (older events)."""
    site = doc.get("site")
    return site if isinstance(site, str) else ""


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


ID_CHUNK = 500  # ids per "_id $in" query


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def find_by_ids(coll: Any, ids: list[Any]) -> Iterator[dict[str, Any]]:
    """The documents of ``coll`` with these ``_id`` values, a bounded ``$in`` at a time (on every
    server an indexed lookup; on nx-27017 the only ``$in`` that does not read every document)."""
    for part in chunks(ids, ID_CHUNK):
        yield from coll.find({"_id": {"$in": part}})

