"""Do Not Track and Global Privacy Control on the server: the visit is recorded without
who made it (EVENTLOG_DNT_MODE=anonymous) or not at all (skip), and no visitor cookie is set."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

COOKIE = "eventlog_vid"
PRIVATE = [{"DNT": "1"}, {"Sec-GPC": "1"}, {"DNT": " 1 ", "Sec-GPC": "0"}]


def visit(headers: dict[str, str], client: Client | None = None):  # noqa: ANN201
    client = client or Client(REMOTE_ADDR="81.2.69.142", HTTP_HOST="127.0.0.1")
    return client.get("/cdcontent/", headers={"Referer": "http://127.0.0.1/", **headers})


def middleware_events(spool_events) -> list[dict]:  # noqa: ANN001
    return [e for e in spool_events() if e.get("source") == "middleware"]


@pytest.mark.parametrize("headers", PRIVATE)
def test_a_private_visit_is_recorded_without_ip_user_or_visitor_and_sets_no_cookie(spool_events, headers) -> None:
    user, _ = get_user_model().objects.get_or_create(username="dnt-learner")
    client = Client(REMOTE_ADDR="81.2.69.142", HTTP_HOST="127.0.0.1")
    client.force_login(user)
    client.cookies[COOKIE] = "0123456789abcdef0123456789abcdef"  # a cookie from before DNT was turned on
    answer = visit(headers, client)
    assert answer.status_code == 200
    assert COOKIE not in answer.cookies
    (event,) = middleware_events(spool_events)
    assert event["dnt"] is True
    assert event["ip_address"] is None and event["visitor_id"] is None
    assert event["visited_by"] == "AnonymousUser"
    assert event["first_time_visit"] is False
    assert event["path_info"] == "/cdcontent/" and event["status_code"] == 200  # the page view still counts


@pytest.mark.parametrize("headers", [{}, {"DNT": "0"}, {"Sec-GPC": "0"}, {"DNT": "yes"}])
def test_other_visits_are_recorded_as_before(spool_events, headers) -> None:
    answer = visit(headers)
    assert COOKIE in answer.cookies
    (event,) = middleware_events(spool_events)
    assert "dnt" not in event
    assert event["ip_address"] and event["visitor_id"] == answer.cookies[COOKIE].value


@override_settings(EVENTLOG_DNT_MODE="skip")
def test_skip_mode_records_nothing(spool_events) -> None:
    answer = visit({"DNT": "1"})
    assert answer.status_code == 200 and COOKIE not in answer.cookies
    assert middleware_events(spool_events) == []


@override_settings(EVENTLOG_RESPECT_DNT=False)
def test_a_site_that_turns_it_off_records_everything(spool_events) -> None:
    answer = visit({"DNT": "1"})
    assert COOKIE in answer.cookies
    (event,) = middleware_events(spool_events)
    assert event["ip_address"] and "dnt" not in event


def test_a_beacon_sent_under_dnt_carries_nobody(spool_events) -> None:
    client = Client(REMOTE_ADDR="81.2.69.142", HTTP_HOST="127.0.0.1")
    client.cookies[COOKIE] = "0123456789abcdef0123456789abcdef"
    body = {"kind": "pageview", "event_id": uuid.uuid4().hex, "page_view_id": uuid.uuid4().hex, "path": "/",
            "ts": int(time.time() * 1000), "title": "Home"}
    answer = client.post("/eventlog/collect/", data=json.dumps(body), content_type="application/json",
                         headers={"Origin": "http://127.0.0.1:8000", "Sec-GPC": "1"})
    assert answer.status_code == 204
    (event,) = spool_events()
    assert (event["ip_address"], event["visitor_id"], event["visited_by"]) == (None, None, "AnonymousUser")
    assert event["first_time_visit"] is False
