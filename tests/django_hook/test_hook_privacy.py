"""The hook's part of issue 11 in-process: a full spool, anonymised IPs, rounded positions.

What the hook writes is read back from the spool itself: whatever is in it is what the
broker, the workers, dead letters and MongoDB will see.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from django_hook import handoff
from pipeline.spool import Spool

COLLECT = "/eventlog/collect/"
ORIGIN = "http://127.0.0.1:8000"


def beacon(**fields) -> dict:
    return {"kind": "pageview", "event_id": uuid.uuid4().hex, "page_view_id": uuid.uuid4().hex, "path": "/",
            "ts": int(time.time() * 1000), "title": "Home", **fields}


def collect(client: Client, *events: dict):  # noqa: ANN201
    return client.post(COLLECT, data=json.dumps({"events": list(events)}), content_type="application/json",
                       headers={"Origin": ORIGIN})


def site_client(ip: str = "81.2.69.142") -> Client:
    return Client(REMOTE_ADDR=ip, HTTP_HOST="127.0.0.1")


@pytest.fixture
def full_spool() -> Iterator[Spool]:
    """This process's live spool, made full by a bound below what it holds."""
    spool = handoff.spool()
    bound = spool.max_bytes
    spool.max_bytes = 1
    try:
        yield spool
    finally:
        spool.max_bytes = bound


def test_a_full_spool_never_breaks_a_page_and_logs_no_exception_per_request(full_spool: Spool, spool_events,
                                                                            caplog: pytest.LogCaptureFixture):
    client = site_client()
    dropped = full_spool.dropped
    with caplog.at_level(logging.WARNING):
        answers = [client.get("/").status_code for _ in range(5)]
    assert answers == [200] * 5
    assert spool_events() == []
    assert full_spool.dropped == dropped + 5
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no exception logged per request"


def test_a_full_spool_answers_the_tracker_503_so_it_keeps_its_events(full_spool: Spool):
    answer = collect(site_client(), beacon())
    assert answer.status_code == 503 and answer["Retry-After"]


def test_a_full_spool_answers_a_progress_report_503_so_the_player_keeps_it(full_spool: Spool):
    user, _ = get_user_model().objects.get_or_create(username="full-spool-learner")
    client = site_client()
    client.force_login(user)
    report = {"foss": "BASH", "language": "English", "tutorial": "Loops in BASH", "position": 61.0,
              "minutes": [0, 1], "visit_id": uuid.uuid4().hex, "report_id": uuid.uuid4().hex}
    answer = client.post("/eventlog/progress/", data=json.dumps(report), content_type="application/json")
    assert answer.status_code == 503, answer.content


def test_ips_are_anonymised_at_the_hook_by_default(spool_events):
    client = site_client("81.2.69.142")
    assert client.get("/").status_code == 200
    assert collect(client, beacon()).status_code == 204
    assert [e["ip_address"] for e in spool_events()] == ["81.2.69.0", "81.2.69.0"]


def test_ipv6_keeps_its_first_48_bits(spool_events):
    assert site_client("2a02:c7f:7e03:9c00::1").get("/").status_code == 200
    assert [e["ip_address"] for e in spool_events()] == ["2a02:c7f:7e03::"]


@override_settings(EVENTLOG_ANONYMIZE_IP=False)
def test_one_switch_keeps_full_ips(spool_events):
    client = site_client("81.2.69.142")
    assert client.get("/").status_code == 200
    assert collect(client, beacon()).status_code == 204
    assert [e["ip_address"] for e in spool_events()] == ["81.2.69.142", "81.2.69.142"]


def test_browser_positions_are_rounded_before_they_are_spooled(spool_events):
    located = beacon(kind="location", latitude=12.971612, longitude=77.594563, accuracy=20)
    assert collect(site_client(), located).status_code == 204
    [spooled] = spool_events()
    assert (spooled["latitude"], spooled["longitude"], spooled["accuracy"]) == (12.97, 77.59, 20)


@override_settings(EVENTLOG_COORDINATE_PRECISION=3)
def test_the_precision_is_a_setting(spool_events):
    located = beacon(kind="location", latitude=-33.868820, longitude=151.209296)
    assert collect(site_client(), located).status_code == 204
    [spooled] = spool_events()
    assert (spooled["latitude"], spooled["longitude"]) == (-33.869, 151.209)
