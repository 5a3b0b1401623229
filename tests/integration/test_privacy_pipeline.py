"""Issue 11 end to end, through the real pipeline (gunicorn demo site -> spool -> Celery ->
nx-27017): IPs anonymised at the hook never reach the spool, the broker or MongoDB in full;
one learner is exported and erased with the management commands, and nobody else is touched."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deploy.stack import PYTHON, ROOT
from tests.helpers.pipeline import Pipeline, live_site, logged_in, wait_until

pytestmark = pytest.mark.integration

PASSWORD = "demo-password"
FULL_IP = "81.2.69.142"
LEARNER, OTHER = "learner17", "learner18"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mongo, redis_url: str, demo_var_dir: Path) -> Iterator[Pipeline]:  # noqa: ANN001
    with live_site(tmp_path_factory.mktemp("privacy"), redis_url, mongo, demo_var_dir, anonymize_ip="true") as site:
        yield site


def browse(site: Pipeline, username: str, tag: str) -> requests.Session:
    """An anonymous page view, a login, two page views and a progress report, from FULL_IP."""
    session = requests.Session()
    session.headers["X-Forwarded-For"] = FULL_IP  # the demo trusts its local proxy
    assert session.get(site.url(f"/?t={tag}"), timeout=10).status_code == 200  # before logging in
    logged_in(site, username, PASSWORD, session)
    for path in (f"/tutorial-search/?t={tag}", f"/cdcontent/?t={tag}"):
        assert session.get(site.url(path), timeout=10).status_code == 200
    report = {"foss": "BASH", "tutorial": "Basics of Shell Scripting", "language": "English", "position": 30.0,
              "minutes": [0], "visit_id": uuid.uuid4().hex, "report_id": uuid.uuid4().hex}
    answer = session.post(site.url("/eventlog/progress/"), data=json.dumps(report), timeout=10,
                          headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": site.url("/"),
                                   "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    return session


def manage(site: Pipeline, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=site.env(), capture_output=True, text=True,
                          timeout=120, check=True)


def test_ips_are_anonymised_before_anything_is_written_and_one_learner_is_erased(site, mongo):  # noqa: ANN001
    tag = uuid.uuid4().hex[:10]
    browse(site, LEARNER, tag)
    browse(site, OTHER, tag)
    logs = mongo.database.website_logs
    wait_until(lambda: logs.count_documents({"path_info": {"$in": ["/", "/tutorial-search/", "/cdcontent/"]},
                                             "visited_by": {"$in": [LEARNER, OTHER]}}) >= 4, 60, "page views stored")
    wait_until(lambda: mongo.database.tutorial_progress_logs.count_documents(
        {"username": {"$in": [LEARNER, OTHER]}}) >= 2, 60, "progress stored")
    mine = list(logs.find({"visited_by": LEARNER}))
    visitor = mine[0]["visitor_id"]
    assert {d["ip_address"] for d in mine} == {"81.2.69.0"}
    # The spool keeps shipped segments until they are checked: the hook never wrote the full address.
    spooled = b"".join(p.read_bytes() for p in site.spool_dir.glob("*.seg*"))
    assert b"81.2.69.0" in spooled and FULL_IP.encode() not in spooled

    exported = manage(site, "eventlog_export", "--username", LEARNER).stdout.splitlines()
    rows = [json.loads(line) for line in exported]
    collections = {r["collection"] for r in rows}
    assert {"website_logs", "tutorial_progress_logs"} <= collections
    assert any(r["document"].get("visited_by") == "AnonymousUser" for r in rows)  # before login, same browser
    assert not any(r["document"].get("visited_by") == OTHER or r["document"].get("username") == OTHER for r in rows)

    erased = manage(site, "eventlog_erase", "--username", LEARNER).stdout
    assert "deleted" in erased
    assert logs.count_documents({"visited_by": LEARNER}) == 0
    assert logs.count_documents({"visitor_id": visitor}) == 0
    assert mongo.database.tutorial_progress_logs.count_documents({"username": LEARNER}) == 0
    assert logs.count_documents({"visited_by": OTHER}) >= 2
    assert mongo.database.tutorial_progress_logs.count_documents({"username": OTHER}) >= 1
