"""Offline packages in-process: the zip, the sync token, collect/ and progress/ from file://
(Origin: null), CORS for the tracker's other origins, and the `site` of every event."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
import zipfile
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from django_hook.offline.token import HEADER, RENEWED_HEADER, PackageToken, issue, verify
from pipeline.enrich import enrich_events

COLLECT, PROGRESS, MARK = "/eventlog/collect/", "/eventlog/progress/", "/eventlog/progress/mark/"
DAY = 24 * 3600


def learner(name: str = "offline-learner"):  # noqa: ANN201
    user, _ = get_user_model().objects.get_or_create(username=name)
    return user


def download(client: Client, foss: str = "BASH", language: str = "English") -> zipfile.ZipFile:
    answer = client.get(f"/cdcontent/download/{foss}/{language}/")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    assert answer.streaming
    return zipfile.ZipFile(io.BytesIO(b"".join(answer.streaming_content)))


def package_config(zf: zipfile.ZipFile) -> dict:
    text = zf.read("BASH-English/eventlog/package.js").decode()
    return json.loads(text.removeprefix("window.eventlogPackage = ").rstrip().rstrip(";"))


def token(learner_name: str | None = "offline-learner", downloaded: float | None = None,
          issued: float | None = None) -> str:
    now = int(time.time())
    return issue(PackageToken(package_id=uuid.uuid4().hex, foss="BASH", language="English", learner=learner_name,
                              site="127.0.0.1", downloaded=int(downloaded or now), issued=int(issued or now)))


def pageview(ts_ms: float, **fields) -> dict:
    return {"kind": "pageview", "event_id": uuid.uuid4().hex, "page_view_id": uuid.uuid4().hex,
            "path": "/watch/BASH/Loops-in-BASH/English/", "ts": int(ts_ms), "title": "Loops", **fields}


def offline_post(client: Client, url: str, body: dict, package_token: str | None, **headers):  # noqa: ANN001
    if package_token is not None:
        headers[HEADER] = package_token
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers={"Origin": "null", **headers})


@pytest.fixture
def client() -> Client:
    return Client(REMOTE_ADDR="203.0.113.9", HTTP_HOST="127.0.0.1")


@pytest.fixture
def store(mongo):  # noqa: ANN001, ANN201
    """The session's real MongoDB (nx-27017): progress answers read the learner's stored state."""
    with override_settings(EVENTLOG_MONGO_URL=mongo.url, EVENTLOG_MONGO_DB=mongo.db):
        yield mongo


# ------------------------------------------------------------------ the package


def test_a_learners_package_holds_every_page_video_and_a_token_naming_them(client):
    client.force_login(learner())
    zf = download(client)
    names = set(zf.namelist())
    assert {"BASH-English/index.html", "BASH-English/eventlog/offline.js", "BASH-English/README.txt"} <= names
    assert "BASH-English/tutorials/Loops-in-BASH.html" in names
    assert zf.getinfo("BASH-English/videos/Loops-in-BASH.webm").compress_type == zipfile.ZIP_STORED
    assert len([n for n in names if n.endswith(".webm")]) == 8
    config = package_config(zf)
    parsed = verify(config["token"])
    assert parsed.learner == "offline-learner" and (parsed.foss, parsed.language) == ("BASH", "English")
    assert parsed.package_id == config["package_id"] and parsed.site == "127.0.0.1"
    assert abs(parsed.issued - time.time()) < 60 and parsed.downloaded == parsed.issued
    assert config["collect"] == "http://127.0.0.1/eventlog/collect/"


def test_every_link_script_and_video_of_the_package_is_inside_it(client):
    """What makes it work from file://: nothing refers outside the zip (relative links only)."""
    zf = download(client)
    names = set(zf.namelist())
    pages = [n for n in names if n.endswith(".html")]
    assert len(pages) == 9
    for page in pages:
        html = zf.read(page).decode()
        folder = page.rsplit("/", 1)[0]
        for ref in re.findall(r'(?:href|src)="([^"]+)"', html):
            assert "://" not in ref and not ref.startswith("/"), (page, ref)
            if ref.startswith("data:"):
                continue
            parts = folder.split("/")
            for step in ref.split("/"):
                parts = parts[:-1] if step == ".." else [*parts, step]
            assert "/".join(parts) in names, (page, ref)


def test_an_anonymous_package_has_no_learner_and_no_progress_buttons(client):
    zf = download(client)
    assert verify(package_config(zf)["token"]).learner is None
    assert "mark-complete" not in zf.read("BASH-English/tutorials/Loops-in-BASH.html").decode()


def test_unknown_course_is_404(client):
    assert client.get("/cdcontent/download/BASH/Klingon/").status_code == 404


# ------------------------------------------------------------------ collect/ from a package


def test_synced_page_views_are_offline_the_learners_and_keep_their_old_time(client, spool_events):
    downloaded = time.time() - 60 * DAY  # older than the 30 days an online client clock may lag
    watched = int((downloaded + DAY) * 1000)
    answer = offline_post(client, COLLECT, {"events": [pageview(watched)]}, token(downloaded=downloaded))
    assert answer.status_code == 204
    assert answer["Access-Control-Allow-Origin"] == "null"
    assert "Access-Control-Allow-Credentials" not in answer
    (spooled,) = spool_events()
    assert spooled["source"] == "offline" and spooled["visited_by"] == "offline-learner"
    assert spooled["site"] == "127.0.0.1"
    docs, dead = enrich_events([json.dumps(spooled)], None)
    assert not dead
    (write,) = docs
    assert write["source"] == "offline" and write["set_on_insert"]["source"] == "offline"
    assert write["set_on_insert"]["datetime"] == datetime.fromtimestamp(watched / 1000, UTC)
    assert write["set_on_insert"]["visitor_id"] == spooled["package_id"]
    assert write["set_on_insert"]["offline_learner"] == "offline-learner"


def test_an_event_dated_before_its_package_was_downloaded_gets_the_receive_time(client, spool_events):
    downloaded = time.time() - 10 * DAY
    offline_post(client, COLLECT, {"events": [pageview((downloaded - 5 * DAY) * 1000)]}, token(downloaded=downloaded))
    (write,), _ = enrich_events([json.dumps(spool_events()[0])], None)
    assert abs(write["set_on_insert"]["datetime"].timestamp() - time.time()) < 60


@pytest.mark.parametrize("bad", [None, "", "forged", token()[:-3] + "abc",
                                 token().replace(":", ";", 1)])
def test_a_sync_without_a_valid_token_is_refused_and_stores_nothing(client, spool_events, bad):
    answer = offline_post(client, COLLECT, {"events": [pageview(time.time() * 1000)]}, bad)
    assert answer.status_code == 403
    assert spool_events() == []


def test_a_token_signed_with_another_key_is_refused(client, spool_events):
    with override_settings(SECRET_KEY="someone-elses-key"):
        forged = token()
    assert offline_post(client, COLLECT, {"events": [pageview(time.time() * 1000)]}, forged).status_code == 403
    assert spool_events() == []


@override_settings(EVENTLOG_OFFLINE_TOKEN_MAX_AGE=10 * DAY, EVENTLOG_OFFLINE_TOKEN_GRACE=5 * DAY)
def test_an_expired_token_is_accepted_within_the_grace_and_renewed(client, spool_events):
    old = time.time() - 12 * DAY
    answer = offline_post(client, COLLECT, {"events": [pageview(time.time() * 1000)]},
                          token(downloaded=old, issued=old))
    assert answer.status_code == 204 and len(spool_events()) == 1
    renewed = verify(answer[RENEWED_HEADER])
    assert abs(renewed.issued - time.time()) < 60 and renewed.downloaded == int(old)
    assert RENEWED_HEADER in answer["Access-Control-Expose-Headers"]


@override_settings(EVENTLOG_OFFLINE_TOKEN_MAX_AGE=10 * DAY, EVENTLOG_OFFLINE_TOKEN_GRACE=5 * DAY)
def test_a_token_past_its_grace_is_refused_as_expired(client, spool_events):
    old = time.time() - 16 * DAY
    answer = offline_post(client, COLLECT, {"events": [pageview(time.time() * 1000)]},
                          token(downloaded=old, issued=old))
    assert answer.status_code == 403 and answer.json()["expired"] is True
    assert spool_events() == []


def test_a_fresh_token_is_not_renewed(client):
    answer = offline_post(client, COLLECT, {"events": [pageview(time.time() * 1000)]}, token())
    assert answer.status_code == 204 and RENEWED_HEADER not in answer


def test_the_preflight_of_a_package_sync_is_answered(client):
    answer = client.options(COLLECT, headers={"Origin": "null", "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": f"content-type,{HEADER.lower()}"})
    assert answer.status_code == 204
    assert answer["Access-Control-Allow-Origin"] == "null"
    assert HEADER in answer["Access-Control-Allow-Headers"]


# ------------------------------------------------------------------ progress/ from a package


def report(**fields) -> dict:
    return {"foss": "BASH", "language": "English", "tutorial": "Loops in BASH", "position": 61.0, "minutes": [0, 1],
            "visit_id": uuid.uuid4().hex, "report_id": uuid.uuid4().hex, "ts": int(time.time() * 1000), **fields}


def test_a_package_report_counts_for_its_learner_without_session_or_csrf(client, spool_events, store):
    learner()
    answer = offline_post(client, PROGRESS, report(), token())
    assert answer.status_code == 200, answer.content
    assert answer["Access-Control-Allow-Origin"] == "null"
    (spooled,) = spool_events()
    assert spooled["kind"] == "progress.report" and spooled["username"] == "offline-learner"
    mark = offline_post(client, MARK, {"foss": "BASH", "language": "English", "tutorial": "Loops in BASH",
                                       "completed": True, "ts": int(time.time() * 1000)}, token())
    assert mark.status_code == 200 and mark.json()["completed"] is True
    assert spool_events()[-1]["username"] == "offline-learner"


def test_an_old_report_from_a_package_keeps_its_time(client, spool_events, store):
    learner()
    downloaded = time.time() - 50 * DAY
    made = int((downloaded + DAY) * 1000)
    assert offline_post(client, PROGRESS, report(ts=made), token(downloaded=downloaded)).status_code == 200
    assert datetime.fromisoformat(spool_events()[0]["at"]).timestamp() == pytest.approx(made / 1000)


def test_an_anonymous_package_cannot_report_progress(client, spool_events):
    assert offline_post(client, PROGRESS, report(), token(learner_name=None)).status_code == 401
    assert offline_post(client, PROGRESS, report(), "forged").status_code == 403
    assert spool_events() == []


def test_a_session_report_still_needs_its_csrf_token(spool_events, store):
    strict = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
    strict.force_login(learner())
    answer = strict.post(PROGRESS, data=json.dumps(report()), content_type="application/json")
    assert answer.status_code == 403 and spool_events() == []
    strict.get("/")  # sets the csrftoken cookie
    answer = strict.post(PROGRESS, data=json.dumps(report()), content_type="application/json",
                         headers={"X-CSRFToken": strict.cookies["csrftoken"].value})
    assert answer.status_code == 200 and spool_events()[-1]["username"] == "offline-learner"


# ------------------------------------------------------------------ sites and CORS


@override_settings(EVENTLOG_TRACKER_ORIGINS=["http://partner.test"],
                   EVENTLOG_TRACKER_CREDENTIAL_ORIGINS=["http://forums.example.test"],
                   EVENTLOG_SITES={"forums.example.test": "forums"})
def test_other_origins_get_cors_and_only_credential_origins_have_their_cookies_read(client, spool_events):
    client.force_login(learner())
    body = {"events": [pageview(time.time() * 1000)]}
    forums = client.post(COLLECT, data=json.dumps(body), content_type="application/json",
                         headers={"Origin": "http://forums.example.test"})
    assert forums.status_code == 204
    assert forums["Access-Control-Allow-Origin"] == "http://forums.example.test"
    assert forums["Access-Control-Allow-Credentials"] == "true"
    partner = client.post(COLLECT, data=json.dumps({"events": [pageview(time.time() * 1000)]}),
                          content_type="application/json", headers={"Origin": "http://partner.test"})
    assert partner.status_code == 204 and partner["Access-Control-Allow-Origin"] == "http://partner.test"
    assert "Access-Control-Allow-Credentials" not in partner
    first, second = spool_events()
    assert (first["site"], first["visited_by"]) == ("forums", "offline-learner")
    assert (second["site"], second["visited_by"]) == ("partner.test", "AnonymousUser")
    stranger = client.options(COLLECT, headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"})
    assert stranger.status_code == 403 and "Access-Control-Allow-Origin" not in stranger
    refused = client.post(COLLECT, data=json.dumps(body), content_type="application/json",
                          headers={"Origin": "http://evil.test"})
    assert refused.status_code == 403


@override_settings(EVENTLOG_SITES={"127.0.0.1": "main"})
def test_the_middleware_names_the_site_of_every_page_view(spool_events):
    Client(HTTP_HOST="127.0.0.1:8000").get("/")
    Client(HTTP_HOST="localhost:8001").get("/")
    sites = [e["site"] for e in spool_events() if e.get("source") == "middleware"]
    assert sites == ["main", "localhost:8001"]


def test_with_a_cookie_domain_the_visitor_cookie_is_shared_by_every_subdomain():
    from django.http import HttpResponse

    from django_hook.middleware import SIX_MONTHS, VisitorCookie

    while True:  # both made within one second: Expires is to the second
        second = int(time.time())
        ours, django = HttpResponse(), HttpResponse()
        VisitorCookie("eventlog_vid", ".example.org").set(ours, "abc")
        django.set_cookie("eventlog_vid", "abc", max_age=SIX_MONTHS, domain=".example.org", httponly=True,
                          samesite="Lax")
        if int(time.time()) == second:
            break
    assert ours.cookies["eventlog_vid"].output() == django.cookies["eventlog_vid"].output()
    assert "Domain=.example.org" in ours.cookies["eventlog_vid"].output()
