"""Event types, validation, size limits, normalisation and event ids.

The hook writes *raw* events (plain JSON, no parsing on the request path). Workers
validate them here before anything reaches MongoDB: nx-27017 does not enforce
$jsonSchema validators, so this module is the gate for every server.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

MAX_URL = 2048
MAX_TEXT = 1024
MAX_ARGS = 32
MAX_DEAD_LETTER_RAW = 16_384
MAX_METHOD = 16
TRUNCATED = "…"  # ends a value the hook cut to its field's limit, so the cut is visible
Scalar = str | int | float | bool | None

# Page view fields only the tracker knows; a middleware record never overwrites them.
TRACKER_FIELDS = ("page_title", "screen_width", "screen_height", "viewport_width", "viewport_height",
                  "language", "timezone")
LOCATION_FIELDS = ("country", "country_code", "region", "city", "latitude", "longitude", "location_source")

# Field names must be safe as MongoDB keys at any depth: no operators, no paths.
_FORBIDDEN_KEY_START = "$"
_FORBIDDEN_KEY_CHAR = "."


def new_event_id() -> str:
    """A fresh event id: a random (version 4) UUID as 32 hex digits; it becomes the _id.

    Built from os.urandom directly: uuid.uuid4() builds a UUID object first and
    costs 2.5x as much on the hook's request path.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def truncate(text: str, limit: int) -> str:
    """``text``, or when it is longer than ``limit`` its first ``limit - 1`` characters and TRUNCATED.

    The hook cuts what a visitor controls (URL arguments, the method) to the limits below, so
    an over-long but valid request is stored, marked, instead of becoming a dead letter.
    """
    return text if len(text) <= limit else text[: limit - 1] + TRUNCATED


def safe_key(key: str) -> str:
    """Make an arbitrary string usable as a MongoDB field name."""
    key = key.replace(_FORBIDDEN_KEY_CHAR, "_")
    if key.startswith(_FORBIDDEN_KEY_START):
        key = "_" + key[1:]
    return key[:MAX_TEXT]


def _check_keys(value: Any, depth: int = 0) -> None:
    if depth > 4:
        raise ValueError("nested deeper than 4 levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or safe_key(key) != key:
                raise ValueError(f"field name {key!r} is not allowed")
            _check_keys(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_keys(item, depth + 1)


class PageView(BaseModel):
    """A page visit as the middleware records it (source 'middleware')."""

    model_config = ConfigDict(extra="ignore", str_max_length=MAX_URL)

    event_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    source: Literal["middleware", "js"] = "middleware"
    path_info: str = Field(min_length=1, max_length=MAX_URL)
    visited_by: str = Field(min_length=1, max_length=150)
    user_agent: str = Field(default="", max_length=MAX_URL)
    ip_address: str | None = None
    datetime: float = Field(gt=0)  # epoch seconds, UTC, taken by the hook
    first_time_visit: bool = False
    method: str = Field(default="GET", max_length=MAX_METHOD)
    referrer: str = Field(default="", max_length=MAX_URL)
    page_title: str = Field(default="", max_length=MAX_TEXT)
    view_args: list[Scalar] = Field(default_factory=list, max_length=MAX_ARGS)
    view_kwargs: dict[str, Scalar] = Field(default_factory=dict, max_length=MAX_ARGS)
    post_data: dict[str, Any] | None = None
    visitor_id: str | None = Field(default=None, max_length=64)
    status_code: int | None = Field(default=None, ge=100, le=599)
    dnt: bool = False  # the browser sent Do Not Track / GPC: recorded without IP, user or visitor id
    site: str | None = Field(default=None, max_length=255)  # pipeline/sites.py
    # The landing page's campaign (the hook keeps these query parameters only): rollup dimensions.
    utm_source: str | None = Field(default=None, max_length=MAX_TEXT)
    utm_medium: str | None = Field(default=None, max_length=MAX_TEXT)
    utm_campaign: str | None = Field(default=None, max_length=MAX_TEXT)

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        return str(ipaddress.ip_address(value))

    @field_validator("view_kwargs", "post_data")
    @classmethod
    def _mongo_safe(cls, value: dict | None) -> dict | None:
        _check_keys(value)
        return value

    @field_validator("path_info")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


class InvalidEvent(ValueError):
    """Raised by validate_page_view; str(exc) is the reason stored in dead_letters."""


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def validate_page_view(raw: Any) -> dict[str, Any]:
    """Validate a raw page view and return the document fields for website_logs.

    The result has ``_id`` (the event id) and ``datetime`` as an aware UTC datetime;
    enrichment adds the derived fields. Raises InvalidEvent with a readable reason.
    """
    if not isinstance(raw, dict):
        raise InvalidEvent(f"event must be a JSON object, not {type(raw).__name__}")
    try:
        event = PageView.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(_reason(exc)) from None
    doc = event.model_dump()
    doc["_id"] = doc.pop("event_id")
    try:
        doc["datetime"] = datetime.fromtimestamp(event.datetime, tz=UTC)
    except (OverflowError, OSError, ValueError):  # inf or a year past 9999
        raise InvalidEvent(f"datetime: {event.datetime!r} is out of range") from None
    return doc


DATETIME_TAG = "$datetime"  # how a dead letter's text keeps a datetime (a store write's), to replay it


def _letter_value(value: Any) -> Any:
    # A store-stage letter holds an enriched write, whose times are datetimes: tagged, so that
    # `eventlog dead-letters replay` rebuilds the very write (pipeline.deadletters). Validated
    # writes have no "$" keys, so the tag cannot clash with data.
    if isinstance(value, datetime):
        return {DATETIME_TAG: value.isoformat()}
    return repr(value)


def _dead_letter_text(raw: Any) -> str:
    # Kept as JSON text: a hostile payload may hold keys MongoDB refuses.
    return json.dumps(raw, default=_letter_value, ensure_ascii=False, sort_keys=True)


def _dead_letter_id(text: str) -> str:
    # Derived from the payload, so a redelivered invalid event is dead-lettered once.
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def dead_letter_id(raw: Any) -> str:
    """The ``_id`` that dead_letter gives the letter of ``raw``."""
    return _dead_letter_id(_dead_letter_text(raw))


def dead_letter(raw: Any, reason: str, stage: str) -> dict[str, Any]:
    """The dead_letters document for an event that cannot be stored.

    ``raw`` may be anything a client or a torn spool line produced.
    """
    text = _dead_letter_text(raw)
    return {
        "_id": _dead_letter_id(text),
        "reason": reason,
        "stage": stage,
        "raw": text[:MAX_DEAD_LETTER_RAW],
        "datetime": datetime.now(UTC),
    }


# ---------------------------------------------------------------- the JS tracker

JS_KINDS = ("pageview", "visit_end", "exit", "location")
MAX_BEACON_EVENTS = 50
MAX_DURATION_MS = 24 * 3600 * 1000
# A client clock (or an offline replay) may be off; beyond these the server's
# receive time is used instead of the client's timestamp.
MAX_CLIENT_PAST = 30 * 24 * 3600
MAX_CLIENT_FUTURE = 300
MAX_CLIENT_TS_MS = 10**15  # the year 33658
# A client's clock reading, epoch milliseconds. Bounded so it fits the 64-bit integers of
# JSON encoders and BSON; implausible clocks are replaced by the receive time (client_time).
ClientTimestamp = Annotated[int | float, Field(gt=0, le=MAX_CLIENT_TS_MS, allow_inf_nan=False)]
EventId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Dimension = Annotated[int, Field(ge=0, le=100_000)]


class BeaconEvent(BaseModel):
    """One event as the tracker sends it. Untrusted: strict types, no unknown keys,
    and nothing about who sent it (user, IP, user agent come from the request)."""

    # No NaN/Infinity: they cannot round-trip through JSON to the worker.
    model_config = ConfigDict(extra="forbid", strict=True, str_max_length=MAX_URL, allow_inf_nan=False)

    kind: Literal["pageview", "visit_end", "exit", "location"]
    event_id: EventId
    page_view_id: EventId
    path: str = Field(min_length=1, max_length=MAX_URL)
    ts: ClientTimestamp
    title: str = Field(default="", max_length=MAX_TEXT)
    referrer: str = Field(default="", max_length=MAX_URL)
    screen_width: Dimension | None = None
    screen_height: Dimension | None = None
    viewport_width: Dimension | None = None
    viewport_height: Dimension | None = None
    language: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    duration_ms: int | None = Field(default=None, ge=0, le=MAX_DURATION_MS)
    url: str | None = Field(default=None, max_length=MAX_URL)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    accuracy: float | None = Field(default=None, ge=0, le=1e7)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> BeaconEvent:
        needed = {"visit_end": ("duration_ms",), "exit": ("url",), "location": ("latitude", "longitude")}
        # The same rule for the spooled form (TrackedEvent, kind "js.exit" etc.).
        missing = [f for f in needed.get(self.kind.removeprefix("js."), ()) if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} event needs {', '.join(missing)}")
        return self


def _reject_non_json_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity; JSON (and the tracker) never sends them.
    raise ValueError(f"{name} is not valid JSON")


def parse_beacon(body: bytes) -> list[dict[str, Any]]:
    """Validate a tracker request body: one event object or {"events": [...]}.

    Returns the events as plain dicts (absent optional fields left out).
    Raises InvalidEvent with a reason fit for the client.
    """
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_non_json_constant)
    except UnicodeDecodeError:
        raise InvalidEvent("body is not valid UTF-8") from None
    except RecursionError:
        raise InvalidEvent("JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidEvent(f"body is not JSON: {exc}") from None
    if isinstance(payload, dict) and "events" in payload:
        if set(payload) != {"events"} or not isinstance(payload["events"], list):
            raise InvalidEvent('expected {"events": [...]} and nothing else')
        items = payload["events"]
    else:
        items = [payload]
    if not 1 <= len(items) <= MAX_BEACON_EVENTS:
        raise InvalidEvent(f"between 1 and {MAX_BEACON_EVENTS} events per request")
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidEvent(f"events.{index}: must be a JSON object")
        try:
            events.append(BeaconEvent.model_validate(item).model_dump(exclude_none=True))
        except ValidationError as exc:
            raise InvalidEvent(f"events.{index}: {_reason(exc)}") from None
    return events


class TrackedEvent(BeaconEvent):
    """A tracker event as spooled by the beacon view: the client's fields plus
    what the server knows. Validated again by the worker."""

    model_config = ConfigDict(extra="ignore", strict=False, str_max_length=MAX_URL)

    kind: Literal["js.pageview", "js.visit_end", "js.exit", "js.location"]  # type: ignore[assignment]
    source: Literal["js", "offline"] = "js"  # "offline": synced from a downloaded package
    visited_by: str = Field(min_length=1, max_length=150)
    ip_address: str | None = None
    user_agent: str = Field(default="", max_length=MAX_URL)
    visitor_id: str | None = Field(default=None, max_length=64)
    first_time_visit: bool = False
    received: float = Field(gt=0)
    site: str | None = Field(default=None, max_length=255)
    package_id: str | None = Field(default=None, max_length=64)  # the offline package that recorded it
    # Offline events: when their package was downloaded. An event may be much older than
    # MAX_CLIENT_PAST (a learner offline for months), but never older than its package.
    earliest: float | None = Field(default=None, gt=0)

    _ip = field_validator("ip_address")(PageView._ip.__func__)


def client_time(ts_ms: float, received: float, earliest: float | None = None) -> datetime:
    """The event's time: the client's clock unless it is implausible.

    ``earliest`` (epoch seconds, e.g. when an offline package was downloaded) replaces the
    usual MAX_CLIENT_PAST bound: such events are recorded long before they arrive.
    """
    client = ts_ms / 1000.0
    oldest = received - MAX_CLIENT_PAST if earliest is None else earliest - MAX_CLIENT_FUTURE
    if oldest <= client <= received + MAX_CLIENT_FUTURE:
        return datetime.fromtimestamp(client, tz=UTC)
    return datetime.fromtimestamp(received, tz=UTC)


_client_timestamp = TypeAdapter(ClientTimestamp, config=ConfigDict(strict=True))  # no "12" or true


def check_client_timestamp(value: Any) -> float:
    """``value`` as a ClientTimestamp; InvalidEvent with the reason otherwise."""
    try:
        return _client_timestamp.validate_python(value)
    except ValidationError as exc:
        raise InvalidEvent("ts: " + "; ".join(dict.fromkeys(e["msg"] for e in exc.errors()))) from None


def validate_tracked(raw: Any) -> dict[str, Any]:
    """Validate a spooled tracker event (worker side); 'datetime' is set from ts."""
    try:
        event = TrackedEvent.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(_reason(exc)) from None
    doc = event.model_dump()
    doc["datetime"] = client_time(event.ts, event.received, event.earliest)
    return doc
