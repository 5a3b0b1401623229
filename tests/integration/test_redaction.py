"""Issue 11 A, black box: HTTP to a live demo site (gunicorn, the real spool, Celery workers),
documents read back from MongoDB. Secrets are never stored, and hostile-but-valid requests
are stored (truncated), not dead-lettered. Each test failed on the code before the issue.

Every test marks its traffic with a unique User-Agent, so tests sharing a server count only
their own documents; and each checks that nothing of its traffic became a dead letter (a dead
letter keeps the raw payload, so it must not hold the secret either).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from pipeline.events import MAX_METHOD, MAX_URL, TRUNCATED, new_event_id
from pipeline.redact_values import REDACTED
from tests.helpers.pipeline import Pipeline, live_site, wait_until

pytestmark = pytest.mark.integration

WATCH = "/watch/BASH/Basics-of-Shell-Scripting/English/"
RESET_TOKEN = "c4k3-0f1e2d3c4b5a69788796a5b4"


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_url, mongo, demo_var_dir) -> Iterator[Pipeline]:  # noqa: ANN001
    with live_site(tmp_path_factory.mktemp("redaction"), redis_url, mongo, demo_var_dir) as pipeline:
        yield pipeline


def agent() -> str:
    return f"eventlog-redaction-test/{uuid.uuid4().hex[:12]}"


def stored_one(mongo, query: dict, collection: str = "website_logs") -> dict:  # noqa: ANN001
    docs = wait_until(lambda: list(mongo.database[collection].find(query)), 60, f"a document matching {query}")
    assert len(docs) == 1, docs
    return docs[0]


def no_trace(mongo, ua: str, *secrets: str) -> None:  # noqa: ANN001
    """Nothing of this traffic was dead-lettered, and none of its documents holds the secrets."""
    letters = mongo.database.dead_letters
    assert letters.count_documents({"raw": {"$regex": re.escape(ua)}}) == 0
    for secret in secrets:
        assert letters.count_documents({"raw": {"$regex": re.escape(secret)}}) == 0, secret
    for doc in mongo.database.website_logs.find({"user_agent": ua}):
        text = json.dumps(doc, default=str)
        assert not [s for s in secrets if s in text], doc


def test_referrer_tokens_are_not_stored(site, mongo):  # noqa: ANN001
    ua = agent()
    referrer = "http://partner.example/cb?token=tk-7Hq2mX9&code=oc-55aa1&page=2"
    assert site.get(WATCH, headers={"User-Agent": ua, "Referer": referrer}).status_code == 200
    doc = stored_one(mongo, {"user_agent": ua})
    assert doc["referrer"] == f"http://partner.example/cb?token={REDACTED}&code={REDACTED}&page=2"
    no_trace(mongo, ua, "tk-7Hq2mX9", "oc-55aa1")


def test_password_reset_link_is_stored_without_its_token(site, mongo):  # noqa: ANN001
    ua = agent()
    assert site.get(f"/accounts/reset/MQ/{RESET_TOKEN}/", headers={"User-Agent": ua}).status_code == 200
    doc = stored_one(mongo, {"user_agent": ua})
    assert doc["path_info"] == f"/accounts/reset/{REDACTED}/{REDACTED}/"
    assert doc["view_kwargs"] == {"uidb64": REDACTED, "token": REDACTED}
    no_trace(mongo, ua, RESET_TOKEN)


def test_secret_form_fields_are_not_stored(site, mongo):  # noqa: ANN001
    ua = agent()
    session = requests.Session()
    session.headers["User-Agent"] = ua
    session.get(site.url("/feedback/"), timeout=10)
    form = {"csrfmiddlewaretoken": session.cookies["csrftoken"], "pw": "pw-Zq81x", "security_code": "sc-19472",
            "comment": "my card is 4111.1111.1111.1111", "rating": "5"}
    answer = session.post(site.url("/feedback/"), data=form, headers={"Referer": site.url("/feedback/")},
                          timeout=10, allow_redirects=False)
    assert answer.status_code == 302
    doc = stored_one(mongo, {"user_agent": ua, "method": "POST"})
    assert doc["post_data"] == {"csrfmiddlewaretoken": REDACTED, "pw": REDACTED, "security_code": REDACTED,
                                "comment": f"my card is {REDACTED}", "rating": "5"}
    no_trace(mongo, ua, "pw-Zq81x", "sc-19472", "4111.1111")


def test_a_superscript_start_time_is_an_ordinary_page_view(site, mongo):  # noqa: ANN001
    ua = agent()
    answer = site.get(WATCH + "?t=²", headers={"User-Agent": ua})
    assert answer.status_code == 200
    assert stored_one(mongo, {"user_agent": ua})["status_code"] == 200


def test_an_over_long_url_argument_is_stored_truncated(site, mongo):  # noqa: ANN001
    ua = agent()
    foss = "F" * (MAX_URL + 300)
    assert site.get(f"/watch/{foss}/Basics-of-Shell-Scripting/English/", headers={"User-Agent": ua}).status_code == 404
    doc = stored_one(mongo, {"user_agent": ua})
    assert doc["view_kwargs"]["foss"] == "F" * (MAX_URL - 1) + TRUNCATED
    assert doc["view_kwargs"]["tutorial"] == "Basics-of-Shell-Scripting"
    no_trace(mongo, ua)


@pytest.mark.parametrize("length", [MAX_METHOD + 1, 20])  # gunicorn takes methods of up to 20 letters
def test_an_over_long_method_is_stored_truncated(site, mongo, length):  # noqa: ANN001
    ua = agent()
    method = "ABCDEFGHIJKLMNOPQRST"[:length]
    answer = requests.request(method, site.url(WATCH), headers={"User-Agent": ua}, timeout=10)
    assert answer.status_code == 403  # CSRF: a method that is not GET, HEAD, OPTIONS or TRACE needs a token
    doc = stored_one(mongo, {"user_agent": ua})
    assert doc["method"] == method[: MAX_METHOD - 1] + TRUNCATED
    assert doc["status_code"] == 403
    no_trace(mongo, ua)


def test_tracker_referrer_path_and_exit_link_are_not_stored_with_secrets(site, mongo):  # noqa: ANN001
    ua = agent()
    page_view = new_event_id()
    now = int(time.time() * 1000)
    events = [
        {"kind": "pageview", "event_id": new_event_id(), "page_view_id": page_view, "ts": now,
         "path": f"/accounts/reset/MQ/{RESET_TOKEN}/", "title": "Reset",
         "referrer": "https://mail.example/open?sig=sg-8812&uid=7"},
        {"kind": "exit", "event_id": new_event_id(), "page_view_id": page_view, "ts": now, "path": WATCH,
         "url": "https://files.example/a.pdf?X-Amz-Signature=amz-31337&id_token=it-4242&lang=en"},
    ]
    answer = requests.post(site.url("/eventlog/collect/"), data=json.dumps({"events": events}), timeout=10,
                           headers={"User-Agent": ua, "Origin": site.url(""), "Content-Type": "application/json"})
    assert answer.status_code == 204, answer.text
    doc = stored_one(mongo, {"_id": page_view})
    assert doc["path_info"] == f"/accounts/reset/{REDACTED}/{REDACTED}/"
    assert doc["referrer"] == f"https://mail.example/open?sig={REDACTED}&uid=7"
    link = stored_one(mongo, {"page_view_id": page_view}, "exit_link_logs")
    assert link["exit_link"] == f"https://files.example/a.pdf?X-Amz-Signature={REDACTED}&id_token={REDACTED}&lang=en"
    assert not [s for s in ("amz-31337", "it-4242") if s in json.dumps(link, default=str)]
    no_trace(mongo, ua, RESET_TOKEN, "sg-8812", "amz-31337", "it-4242")
