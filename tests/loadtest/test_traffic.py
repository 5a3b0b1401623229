"""loadtest.traffic, the traffic of `make demo`, run for real against a live demo
site (gunicorn, a Celery worker, nx-27017): every visit it sends is stored, and
what its browsers send to the tracker's endpoint reaches MongoDB too."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.stack import PYTHON, ROOT
from tests.helpers.pipeline import Pipeline, live_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mongo, redis_url: str, demo_var_dir: Path) -> Iterator[Pipeline]:  # noqa: ANN001
    with live_site(tmp_path_factory.mktemp("traffic"), redis_url, mongo, demo_var_dir) as site:
        yield site


def run_traffic(site: Pipeline, var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """python -m loadtest.traffic against ``site``, described the way `make up` describes its stack."""
    (var_dir / "run").mkdir(parents=True)
    state = {"web_port": site.web_port, "flower_port": 0, "flower_user": "admin", "env": site.env()}
    (var_dir / "run" / "stack.json").write_text(json.dumps(state))
    env = {**os.environ, **site.env(), "EVENTLOG_VAR_DIR": str(var_dir)}
    return subprocess.run([PYTHON, "-m", "loadtest.traffic", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def figure(pattern: str, text: str) -> tuple[int, ...]:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the summary:\n{text}"
    return tuple(int(g) for g in found.groups())


def test_every_visit_and_every_tracker_event_is_stored(site, mongo, tmp_path):  # noqa: ANN001
    start = datetime.now(UTC).replace(microsecond=0)  # BSON dates keep milliseconds
    result = run_traffic(site, tmp_path / "var", "--visits", "400", "--seed", "11", "--timeout", "90")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    sent, = figure(r"events sent +(\d+) ", out)
    stored, of = figure(r"events stored +(\d+) of (\d+) \(all stored", out)
    assert sent >= 400 and stored == of == sent
    assert figure(r"dead letters +(\d+) this run", out) == (0,)

    # The browsers' side: beacons accepted, merged into the same page views, exit links kept.
    statuses = re.search(r"tracker\.js +(\d+) beacon POSTs to collect/ \(([^)]*)\)", out)
    assert statuses, out
    assert statuses.group(2) == f"204: {statuses.group(1)}"  # no beacon refused
    pageviews, visit_ends, exits = figure(r"accepted: pageview (\d+), visit_end (\d+), exit (\d+)", out)
    assert pageviews > 100 and visit_ends > 100
    merged, = figure(r"merged +(\d+) page views hold the browser's title, screen and time zone \(all stored", out)
    assert merged == pageviews
    timed, = figure(r"engaged time +(\d+) page views", out)
    assert timed == visit_ends
    stored_exits, accepted_exits = figure(r"exit links +(\d+) stored of (\d+) accepted", out)
    assert stored_exits == accepted_exits == exits

    # One document per page view: the tracker's details went into the middleware's documents.
    logs = mongo.database.website_logs
    run = {"datetime": {"$gte": start}}
    assert logs.count_documents(run) == sent
    both = logs.count_documents({**run, "sources": {"$all": ["middleware", "js"]}, "page_title": {"$ne": ""}})
    assert both == merged
    assert logs.count_documents({**run, "source": "js"}) == 0  # no stand-alone tracker records


def test_learners_watch_videos_and_their_progress_is_stored(site, mongo, tmp_path):  # noqa: ANN001
    """The demo's logged-in learners play videos through the real progress API (session login,
    CSRF), and what the API accepted reaches tutorial_progress_logs, so the dashboard's
    tutorial half has data after `make demo`."""
    from pipeline.progress import format_time

    start = datetime.now(UTC)
    result = run_traffic(site, tmp_path / "var", "--visits", "300", "--seed", "7", "--timeout", "90")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    plays, learners, reports, complete, incomplete = figure(
        r"videos +(\d+) played by (\d+) learners: (\d+) progress reports, (\d+) marked complete, "
        r"(\d+) incomplete", out)
    assert plays > 0 and learners > 0 and reports >= plays
    http = re.search(r"incomplete \(HTTP ([^)]*)\)", out)
    assert http and http.group(1) == f"200: {reports + complete + incomplete}", out  # nothing refused
    tutorials, = figure(r"progress stored +(\d+) learner tutorials hold every minute and mark sent \(all stored", out)

    # The documents themselves: one per (learner, tutorial) reported on in this run, with minutes watched.
    logs = mongo.database.tutorial_progress_logs
    run = {"last_report_at": {"$gte": format_time(start)}}
    assert logs.count_documents(run) == tutorials
    docs = list(logs.find(run))
    assert all(d["minutes_watched"] and d["visits"] >= 1 and d["username"].startswith("learner") for d in docs)
    assert len({d["username"] for d in docs}) == learners
    print(out)  # the summary, for -rP
