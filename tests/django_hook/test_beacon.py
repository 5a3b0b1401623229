"""POST /eventlog/collect/: every status code, hostile input, the hand-off."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_hook import handoff
from django_hook.conf import eventlog_settings
from pipeline.enrich import enrich_events

URL = "/eventlog/collect/"
ORIGIN = "http://127.0.0.1:8000"


def event(**fields) -> dict:
    return {"kind": "pageview", "event_id": uuid.uuid4().hex, "page_view_id": uuid.uuid4().hex, "path": "/",
            "ts": int(time.time() * 1000), "title": "Home", **fields}


def post(client: Client, body, content_type: str = "application/json", **headers):  # noqa: ANN001
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type, headers={"Origin": ORIGIN, **headers})


def site_client(ip: str) -> Client:
    return Client(REMOTE_ADDR=ip, HTTP_HOST="127.0.0.1")


@pytest.fixture
def client() -> Client:
    return site_client("203.0.113.7")


def test_valid_events_are_spooled_with_the_server_side_facts(client, spool_events):
    user, _ = get_user_model().objects.get_or_create(username="beacon-user")
    client.force_login(user)
    pv = uuid.uuid4().hex
    answer = post(client, {"events": [event(page_view_id=pv), event(kind="visit_end", page_view_id=pv,
                                                                      duration_ms=5000)]},
                  HTTP_USER_AGENT="TestAgent/1.0")
    assert answer.status_code == 204
    spooled = spool_events()
    assert [e["kind"] for e in spooled] == ["js.pageview", "js.visit_end"]
    assert {e["visited_by"] for e in spooled} == {"beacon-user"}
    assert {e["source"] for e in spooled} == {"js"}
    assert {e["page_view_id"] for e in spooled} == {pv}


def test_sendbeacon_text_plain_is_accepted(client, spool_events):
    assert post(client, {"events": [event()]}, content_type="text/plain;charset=UTF-8").status_code == 204
    assert len(spool_events()) == 1


@pytest.mark.parametrize("forged", [{"visited_by": "admin"}, {"source": "middleware"}, {"ip_address": "1.1.1.1"}])
def test_who_sent_it_cannot_be_forged(client, spool_events, forged):
    answer = post(client, event(**forged))
    assert answer.status_code == 400
    assert list(forged)[0] in answer.json()["error"]
    assert spool_events() == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[" * 3000 + b"]" * 3000, "nested"),
        (json.dumps({"$where": "1"}).encode(), "kind"),
        (json.dumps(event(**{"a.b": 1})).encode(), "a.b"),
        (json.dumps(event(title="x" * 2000)).encode(), "title"),
        (json.dumps(event(screen_width="1280")).encode(), "screen_width"),
        (json.dumps(event(kind="exit")).encode(), "url"),
        (json.dumps(event(kind="exit", url="javascript:alert(1)")).encode(), "url"),
        (json.dumps(event(path="no-slash")).encode(), "path"),
        (json.dumps({"events": []}).encode(), "between 1 and"),
        (json.dumps({"events": [{}] * 51}).encode(), "between 1 and"),
        (json.dumps([1, 2]).encode(), "object"),
        (json.dumps(event(latitude=91, longitude=0, kind="location")).encode(), "latitude"),
        # Python's json writes and reads these; they are not JSON and would reach the worker as null.
        (json.dumps(event(ts=float("inf"))).encode(), "Infinity"),
        (json.dumps(event(ts=float("nan"))).encode(), "NaN"),
        (json.dumps(event(kind="location", latitude=float("-inf"), longitude=0)).encode(), "Infinity"),
        (json.dumps(event(ts=10**30)).encode(), "ts"),  # beyond 64 bits: the spool's encoder refuses it
    ],
)
def test_invalid_input_is_400_with_a_reason(client, spool_events, body, fragment):
    answer = post(client, body)
    assert answer.status_code == 400
    assert fragment in answer.json()["error"]
    assert spool_events() == []


def test_body_over_the_limit_is_413(client, spool_events):
    big = {"events": [event(title="t" * 1000) for _ in range(10)]}
    assert len(json.dumps(big)) > eventlog_settings().beacon_max_bytes
    assert post(client, big).status_code == 413
    assert spool_events() == []


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_405(client, method):
    answer = getattr(client, method)(URL)
    assert answer.status_code == 405
    assert answer["Allow"] == "POST"


def test_foreign_or_missing_origin_is_403(client, spool_events):
    assert post(client, event(), Origin="https://evil.example").status_code == 403
    answer = client.post(URL, data=json.dumps(event()), content_type="application/json")
    assert answer.status_code == 403
    assert spool_events() == []


def test_form_content_type_is_415(client):
    assert post(client, "kind=pageview", content_type="application/x-www-form-urlencoded").status_code == 415


@override_settings(EVENTLOG_BEACON_RATE="3/m")
def test_a_client_over_the_rate_limit_gets_429(spool_events):
    noisy = site_client("198.51.100.99")
    statuses = [post(noisy, event()).status_code for _ in range(5)]
    assert statuses == [204, 204, 204, 429, 429]
    assert post(site_client("198.51.100.100"), event()).status_code == 204
    assert len(spool_events()) == 4


def test_beacons_are_not_recorded_as_page_visits(client, spool_events):
    post(client, event())
    assert [e.get("kind") for e in spool_events()] == ["js.pageview"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
field_names = st.sampled_from(["kind", "event_id", "page_view_id", "path", "ts", "title", "url", "duration_ms",
                               "latitude", "longitude", "screen_width", "language", "$set", "a.b", "visited_by"])
mutated_events = st.builds(
    lambda base, changes: {**base, **changes},
    st.builds(event, kind=st.sampled_from(["pageview", "visit_end", "exit", "location", "other"])),
    st.dictionaries(field_names, json_values, max_size=3),
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_events.map(lambda e: json.dumps(e).encode()),
    st.lists(mutated_events, min_size=1, max_size=4).map(lambda es: json.dumps({"events": es}).encode()),
    st.binary(max_size=300),
)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_hostile_payloads_never_5xx_and_only_valid_events_are_spooled(spool_events, body):
    before = len(spool_events())
    with override_settings(EVENTLOG_BEACON_RATE="1000000/m", EVENTLOG_BEACON_BYTES_RATE="1000000000/m"):
        answer = post(site_client("192.0.2.1"), body)
    assert answer.status_code in (204, 400, 413), answer.content[:200]
    handed_off = spool_events()[before:]
    if answer.status_code != 204:
        assert handed_off == []
        assert "error" in answer.json()
        return
    assert handed_off
    writes, dead = enrich_events(handed_off, geo=None)
    assert dead == [], dead  # everything the endpoint accepted is storable as it is
    assert len(writes) == len(handed_off)


def test_a_full_disk_is_503_so_the_tracker_retries(client, spool_events):
    spool = handoff.spool()
    spool.seal()
    spool._fd = os.open("/dev/full", os.O_WRONLY)  # the kernel answers every write with ENOSPC
    try:
        answer = post(client, event())
    finally:
        os.close(spool._fd)
        spool._fd = None
    assert answer.status_code == 503
    assert answer["Retry-After"] == "30"
    assert post(client, event()).status_code == 204  # the next segment is written normally
    assert len(spool_events()) == 1
