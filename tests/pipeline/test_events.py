"""pipeline.events: validation of raw page views, dead letters, event ids."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.events import (
    MAX_DEAD_LETTER_RAW,
    MAX_TEXT,
    MAX_URL,
    InvalidEvent,
    dead_letter,
    new_event_id,
    safe_key,
    validate_page_view,
)


def raw_event(**changes: object) -> dict:
    """A raw event with exactly the fields django_hook.middleware writes."""
    event = {
        "event_id": new_event_id(),
        "source": "middleware",
        "path_info": "/watch/BASH/Basics-of-Shell-Scripting/English/",
        "visited_by": "AnonymousUser",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        "ip_address": "81.2.69.142",
        "datetime": 1_700_000_000.25,
        "first_time_visit": True,
        "method": "POST",
        "referrer": "https://example.org/",
        "page_title": "",
        "view_args": [],
        "view_kwargs": {"foss": "BASH", "tutorial": "Basics-of-Shell-Scripting", "language": "English"},
        "post_data": {"q": "shell", "csrfmiddlewaretoken": "[REDACTED]", "_truncated": True},
        "visitor_id": new_event_id(),
        "status_code": 200,
    }
    event.update(changes)
    return event


def invalid_reason(raw: object) -> str:
    with pytest.raises(InvalidEvent) as info:
        validate_page_view(raw)
    reason = str(info.value)
    assert reason and "\n" not in reason
    return reason


# --- valid events -----------------------------------------------------------------------


def test_valid_event_becomes_document_with_id_and_utc_datetime() -> None:
    raw = raw_event()
    doc = validate_page_view(raw)
    assert doc["_id"] == raw["event_id"]
    assert "event_id" not in doc
    assert isinstance(doc["datetime"], datetime)
    assert doc["datetime"].tzinfo is not None
    assert doc["datetime"].utcoffset() == timedelta(0)
    assert doc["datetime"] == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)
    for key in ("path_info", "visited_by", "user_agent", "ip_address", "method", "referrer", "view_kwargs",
                "post_data", "visitor_id", "status_code", "first_time_visit", "source"):
        assert doc[key] == raw[key], key


def test_real_time_value_round_trips() -> None:
    now = time.time()
    doc = validate_page_view(raw_event(datetime=now))
    assert abs(doc["datetime"].timestamp() - now) < 1e-3


def test_minimal_event_gets_defaults() -> None:
    raw = {"event_id": "a" * 32, "path_info": "/", "visited_by": "AnonymousUser", "datetime": 1.0}
    doc = validate_page_view(raw)
    assert doc["_id"] == "a" * 32
    assert doc["source"] == "middleware"
    assert doc["method"] == "GET"
    assert doc["ip_address"] is None
    assert doc["view_args"] == [] and doc["view_kwargs"] == {}
    assert doc["post_data"] is None
    assert doc["first_time_visit"] is False


def test_unknown_fields_are_dropped() -> None:
    doc = validate_page_view(raw_event(evil={"$where": "1"}, another="x"))
    assert "evil" not in doc and "another" not in doc


@pytest.mark.parametrize(
    ("given", "stored"),
    [("", None), (None, None), ("2001:DB8:0:0::1", "2001:db8::1"), ("10.0.0.1", "10.0.0.1")],
)
def test_ip_address_is_normalised(given: str | None, stored: str | None) -> None:
    assert validate_page_view(raw_event(ip_address=given))["ip_address"] == stored


def test_js_source_is_accepted() -> None:
    assert validate_page_view(raw_event(source="js"))["source"] == "js"


def test_does_not_mutate_raw() -> None:
    raw = raw_event()
    copy = json.loads(json.dumps(raw))
    validate_page_view(raw)
    assert raw == copy


# --- invalid events ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    ["", "abc", "A" * 32, "g" * 32, "a" * 31, "a" * 33, "12345678-1234-1234-1234-123456789abc", 12345],
)
def test_bad_event_id(bad_id: object) -> None:
    assert "event_id" in invalid_reason(raw_event(event_id=bad_id))


def test_missing_event_id() -> None:
    raw = raw_event()
    del raw["event_id"]
    assert "event_id" in invalid_reason(raw)


def test_missing_path_info() -> None:
    raw = raw_event()
    del raw["path_info"]
    reason = invalid_reason(raw)
    assert "path_info" in reason
    assert "required" in reason.lower()


@pytest.mark.parametrize("path", ["watch/BASH/", "http://evil/", " /", ""])
def test_path_must_start_with_slash(path: str) -> None:
    assert "path_info" in invalid_reason(raw_event(path_info=path))


def test_path_reason_is_readable() -> None:
    assert "must start with '/'" in invalid_reason(raw_event(path_info="no-slash"))


@pytest.mark.parametrize("ip", ["999.1.1.1", "not an ip", "1.2.3", "::g", "81.2.69.142, 10.0.0.1"])
def test_bad_ip(ip: str) -> None:
    reason = invalid_reason(raw_event(ip_address=ip))
    assert reason.startswith("ip_address")
    assert "does not appear to be an IPv4 or IPv6 address" in reason


@pytest.mark.parametrize("key", ["$where", "$gt", "a.b", "user.name", ".", "$"])
def test_unsafe_keys_in_view_kwargs(key: str) -> None:
    reason = invalid_reason(raw_event(view_kwargs={key: "x"}))
    assert "view_kwargs" in reason
    assert repr(key) in reason


@pytest.mark.parametrize(
    "post_data",
    [
        {"$set": "x"},
        {"a.b": "x"},
        {"ok": {"$ne": 1}},
        {"ok": [{"nested.key": 1}]},
        {"ok": {"deeper": {"x.y": 1}}},
    ],
)
def test_unsafe_keys_in_post_data_at_any_depth(post_data: dict) -> None:
    reason = invalid_reason(raw_event(post_data=post_data))
    assert "post_data" in reason
    assert "is not allowed" in reason


def test_nesting_limit() -> None:
    # depth 4 is the deepest value allowed (the outer dict is depth 0)
    ok = {"a": {"b": {"c": {"d": 1}}}}
    assert validate_page_view(raw_event(post_data=ok))["post_data"] == ok
    for too_deep in ({"a": {"b": {"c": {"d": {"e": 1}}}}}, {"a": [[[[1]]]]}):
        reason = invalid_reason(raw_event(post_data=too_deep))
        assert "post_data" in reason and "nested deeper than 4 levels" in reason


def test_view_kwargs_values_must_be_scalars() -> None:
    assert "view_kwargs" in invalid_reason(raw_event(view_kwargs={"a": {"b": 1}}))


@pytest.mark.parametrize(
    ("field", "limit"),
    [("path_info", MAX_URL), ("referrer", MAX_URL), ("user_agent", MAX_URL), ("page_title", MAX_TEXT)],
)
def test_too_long_strings(field: str, limit: int) -> None:
    at_limit = "/" + "x" * (limit - 1)
    assert validate_page_view(raw_event(**{field: at_limit}))[field] == at_limit
    reason = invalid_reason(raw_event(**{field: at_limit + "x"}))
    assert field in reason
    assert f"at most {limit} characters" in reason


def test_too_long_visited_by_and_method() -> None:
    assert "visited_by" in invalid_reason(raw_event(visited_by="u" * 151))
    assert "method" in invalid_reason(raw_event(method="M" * 17))


def test_too_many_view_args() -> None:
    assert "view_args" in invalid_reason(raw_event(view_args=list(range(33))))


@pytest.mark.parametrize("value", [0, -5, "yesterday", None, float("nan")])
def test_bad_datetime(value: object) -> None:
    assert "datetime" in invalid_reason(raw_event(datetime=value))


@pytest.mark.parametrize("value", [float("inf"), 1e20])
def test_datetime_out_of_range_is_invalid_not_a_crash(value: float) -> None:
    # Regression: datetime.fromtimestamp raised OverflowError, which escaped
    # validate_page_view and failed a whole enrichment batch.
    assert "datetime" in invalid_reason(raw_event(datetime=value))


@pytest.mark.parametrize("value", ["admin", "js_or_not"])
def test_bad_source(value: str) -> None:
    assert "source" in invalid_reason(raw_event(source=value))


@pytest.mark.parametrize("status", [99, 600])
def test_bad_status_code(status: int) -> None:
    assert "status_code" in invalid_reason(raw_event(status_code=status))


@pytest.mark.parametrize(("raw", "kind"), [([], "list"), ("x", "str"), (None, "NoneType"), (42, "int")])
def test_non_dict_input(raw: object, kind: str) -> None:
    assert invalid_reason(raw) == f"event must be a JSON object, not {kind}"


def test_reason_lists_several_problems_but_at_most_five() -> None:
    raw = {"event_id": "x", "path_info": "x", "visited_by": "", "datetime": -1, "method": "M" * 20,
           "status_code": 1, "ip_address": "nope"}
    reason = invalid_reason(raw)
    parts = reason.split("; ")
    assert len(parts) == 5
    assert parts[0].startswith("event_id")


def test_invalid_event_is_a_value_error() -> None:
    assert issubclass(InvalidEvent, ValueError)


# --- safe_key ---------------------------------------------------------------------------


def test_safe_key() -> None:
    assert safe_key("plain_key") == "plain_key"
    assert safe_key("a.b.c") == "a_b_c"
    assert safe_key("$where") == "_where"
    assert safe_key("$a.b") == "_a_b"
    assert len(safe_key("k" * 5000)) == MAX_TEXT


# --- dead letters -----------------------------------------------------------------------


def test_dead_letter_shape() -> None:
    raw = {"event_id": "x", "path_info": "nope", "$where": {"a.b": 1}}
    before = datetime.now(UTC)
    letter = dead_letter(raw, "event_id: bad", stage="enrich")
    after = datetime.now(UTC)
    assert set(letter) == {"_id", "reason", "stage", "raw", "datetime"}
    assert re.fullmatch(r"[0-9a-f]{32}", letter["_id"])
    assert letter["reason"] == "event_id: bad"
    assert letter["stage"] == "enrich"
    assert isinstance(letter["raw"], str)
    assert json.loads(letter["raw"]) == raw
    assert before <= letter["datetime"] <= after
    assert letter["datetime"].tzinfo is not None


def test_dead_letter_is_deterministic_for_same_payload() -> None:
    a = {"b": 1, "a": [1, 2, {"z": None}]}
    b = {"a": [1, 2, {"z": None}], "b": 1}  # same payload, other key order
    first = dead_letter(a, "reason one", "enrich")
    assert dead_letter(a, "reason one", "enrich")["_id"] == first["_id"]
    assert dead_letter(b, "another reason", "store")["_id"] == first["_id"]
    assert dead_letter(b, "r", "enrich")["raw"] == first["raw"]


def test_dead_letter_differs_for_different_payloads() -> None:
    ids = {dead_letter(p, "r", "enrich")["_id"] for p in ({"a": 1}, {"a": 2}, [1], "x", None, 1)}
    assert len(ids) == 6


@pytest.mark.parametrize("raw", ["torn line {\"event", None, 3.5, [1, "a"], {"_spool_corrupt": "{\"ev"}])
def test_dead_letter_accepts_anything_json_like(raw: object) -> None:
    letter = dead_letter(raw, "r", "spool")
    assert json.loads(letter["raw"]) == raw


def test_dead_letter_non_json_values_use_repr_and_datetimes_are_tagged() -> None:
    letter = dead_letter({"when": datetime(2020, 1, 1, tzinfo=UTC), "data": b"\x00"}, "r", "enrich")
    decoded = json.loads(letter["raw"])
    assert decoded["data"] == repr(b"\x00")
    # Tagged ISO text, so that a replay rebuilds the datetime (pipeline.deadletters).
    assert decoded["when"] == {"$datetime": "2020-01-01T00:00:00+00:00"}


def test_dead_letter_keeps_unicode_and_caps_raw() -> None:
    assert "Changchun 长春" in dead_letter({"city": "Changchun 长春"}, "r", "enrich")["raw"]
    letter = dead_letter({"blob": "x" * (MAX_DEAD_LETTER_RAW * 2)}, "r", "enrich")
    assert len(letter["raw"]) == MAX_DEAD_LETTER_RAW


# --- event ids --------------------------------------------------------------------------


def test_new_event_id_is_32_hex_and_unique() -> None:
    ids = [new_event_id() for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # UUID4: version nibble is 4, variant bits 10xx
    assert all(i[12] == "4" and i[16] in "89ab" for i in ids)


def test_new_event_id_validates() -> None:
    assert validate_page_view(raw_event(event_id=new_event_id()))["_id"]
