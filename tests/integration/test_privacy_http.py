"""Black-box, through a live demo site and the real pipeline: Do Not Track, which client
address is believed, and beacon budgets shared by every web process."""

from __future__ import annotations

import http.client
import json
import time
import uuid

import pytest
import requests

from tests.helpers.pipeline import wait_until

pytestmark = pytest.mark.integration

COOKIE = "eventlog_vid"
LONDON = "81.2.69.142"  # GeoIP2-City-Test.mmdb: GB, England, London


@pytest.fixture
def site(make_pipeline, redis_url):  # noqa: ANN001, ANN201
    """A 3-process demo site on a shared cache (as `make up` runs it), full addresses kept."""
    pipeline = make_pipeline(anonymize_ip="false", beacon_rate="20/h")
    pipeline.settings.update(DEMO_CACHE_URL=redis_url, DEMO_CACHE_PREFIX=f"test-{uuid.uuid4().hex}")
    pipeline.worker()
    pipeline.web(workers=3)
    return pipeline


def stored(mongo, tag: str, count: int) -> list[dict]:  # noqa: ANN001
    query = {"referrer": f"https://example.org/{tag}"}
    wait_until(lambda: mongo.database.website_logs.count_documents(query) >= count, 60, f"{count} for {tag}")
    return list(mongo.database.website_logs.find(query))


def get_from(source_ip: str, port: int, headers: dict[str, str]) -> http.client.HTTPResponse:
    """GET /cdcontent/ over a connection made from ``source_ip`` (any 127.x address is this host)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source_ip, 0))
    conn.request("GET", "/cdcontent/", headers={"Host": "127.0.0.1", **headers})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer


def test_do_not_track_visits_are_stored_without_ip_visitor_or_cookie(site, mongo) -> None:  # noqa: ANN001
    tag = uuid.uuid4().hex[:12]
    referer = {"Referer": f"https://example.org/{tag}", "X-Forwarded-For": LONDON}
    private = [site.get("/cdcontent/", headers={**referer, "DNT": "1"}),
               site.get("/cdcontent/", headers={**referer, "Sec-GPC": "1"})]
    tracked = site.get("/cdcontent/", headers=referer)
    assert [a.status_code for a in private + [tracked]] == [200, 200, 200]
    for answer in private:
        assert COOKIE not in answer.cookies and COOKIE not in answer.headers.get("Set-Cookie", "")
    assert COOKIE in tracked.cookies

    docs = stored(mongo, tag, 3)  # every visit stored: none became a dead letter
    dnt = [d for d in docs if d.get("dnt")]
    assert len(dnt) == 2
    for doc in dnt:
        assert doc["ip_address"] is None and doc["visitor_id"] is None and doc["visited_by"] == "AnonymousUser"
        assert doc["country"] is None and doc["city"] is None
        assert doc["event_name"] and doc["browser_family"]  # still a page view in the figures
    (other,) = [d for d in docs if not d.get("dnt")]
    assert other["ip_address"] == LONDON and other["country"] == "United Kingdom"
    assert other["visitor_id"] == tracked.cookies[COOKIE]


def test_only_the_trusted_proxy_is_believed_and_a_bad_header_still_records(site, mongo) -> None:  # noqa: ANN001
    tag = uuid.uuid4().hex[:12]
    referer = {"Referer": f"https://example.org/{tag}"}
    # The demo trusts 127.0.0.1 (its load generator); 127.0.0.2 is a client like any other.
    assert get_from("127.0.0.2", site.web_port, {**referer, "X-Forwarded-For": LONDON}).status == 200
    assert get_from("127.0.0.1", site.web_port, {**referer, "X-Forwarded-For": f"6.6.6.6, {LONDON}"}).status == 200
    assert get_from("127.0.0.1", site.web_port, {**referer, "X-Forwarded-For": f"{LONDON}, <script>"}).status == 200
    ips = sorted(d["ip_address"] for d in stored(mongo, tag, 3))  # all three stored, none dead-lettered
    assert ips == ["127.0.0.1", "127.0.0.2", LONDON]


def beacon(site) -> int:  # noqa: ANN001
    body = {"kind": "pageview", "event_id": uuid.uuid4().hex, "page_view_id": uuid.uuid4().hex, "path": "/",
            "ts": int(time.time() * 1000), "title": "Home"}
    # A new connection each time, so gunicorn hands the requests to its three workers in turn.
    answer = requests.post(site.url("/eventlog/collect/"), data=json.dumps(body), timeout=10,
                           headers={"Content-Type": "application/json", "Origin": site.url(""),
                                    "X-Forwarded-For": "192.0.2.77", "Connection": "close"})
    return answer.status_code


def test_the_beacon_budget_holds_across_web_processes(site) -> None:  # noqa: ANN001
    statuses = [beacon(site) for _ in range(30)]
    # 20 events an hour for this client, whichever process answered; with a cache per
    # process each of the three would have let 20 through.
    assert statuses.count(204) == 20 and statuses.count(429) == 10, statuses
