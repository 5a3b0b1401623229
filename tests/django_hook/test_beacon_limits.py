"""collect/'s limits count events and bytes per trusted client IP, in Django's cache."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from deploy.stack import free_port

URL = "/eventlog/collect/"
ORIGIN = "http://127.0.0.1:8000"


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def event(**fields) -> dict:
    return {"kind": "pageview", "event_id": uuid.uuid4().hex, "page_view_id": uuid.uuid4().hex, "path": "/",
            "ts": int(time.time() * 1000), "title": "Home", **fields}


def send(ip: str, events: int = 1, title: str = "Home", body: bytes | None = None, **headers: str):  # noqa: ANN201
    data = body if body is not None else json.dumps({"events": [event(title=title) for _ in range(events)]})
    return Client(REMOTE_ADDR=ip, HTTP_HOST="127.0.0.1").post(
        URL, data=data, content_type="application/json", headers={"Origin": ORIGIN, **headers})


@override_settings(EVENTLOG_BEACON_RATE="10/m")
def test_the_rate_counts_events_not_requests(spool_events) -> None:
    assert send("198.51.100.1", events=8).status_code == 204
    over = send("198.51.100.1", events=3)  # 11 events: one request too many, though only the second
    assert over.status_code == 429
    assert 0 < int(over["Retry-After"]) <= 60
    assert "error" in over.json()
    assert len(spool_events()) == 8  # nothing of the refused request
    assert send("198.51.100.2", events=10).status_code == 204  # another client has its own budget


@override_settings(EVENTLOG_BEACON_BYTES_RATE="2500/m")
def test_the_bytes_of_the_requests_are_counted_too() -> None:
    big = "t" * 700  # about 900 bytes a request
    statuses = [send("198.51.100.3", title=big).status_code for _ in range(3)]
    assert statuses == [204, 204, 429]


@override_settings(EVENTLOG_BEACON_RATE="3/m")
def test_invalid_requests_spend_the_budget_as_well() -> None:
    statuses = [send("198.51.100.4", body=b"{not json").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]


@override_settings(EVENTLOG_BEACON_RATE="3/m")
def test_a_forged_forwarded_for_does_not_buy_a_new_budget() -> None:
    # 203.0.113.x is no proxy of the demo's: its X-Forwarded-For is not believed.
    statuses = [send("203.0.113.80", **{"X-Forwarded-For": f"192.0.2.{i}"}).status_code for i in range(4)]
    assert statuses == [204, 204, 204, 429]


@override_settings(EVENTLOG_BEACON_RATE="3/m")
def test_behind_the_trusted_proxy_each_client_has_its_own_budget() -> None:
    statuses = [send("127.0.0.1", **{"X-Forwarded-For": f"192.0.2.{i}"}).status_code for i in range(4)]
    assert statuses == [204] * 4


def test_a_cache_that_is_down_lets_beacons_through(spool_events) -> None:
    dead = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
                        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
    with override_settings(CACHES=dead, EVENTLOG_BEACON_RATE="1/m"):
        assert [send("198.51.100.5").status_code for _ in range(3)] == [204] * 3
    assert len(spool_events()) == 3
