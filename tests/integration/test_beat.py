"""The real beat scheduler drives the rollups: `celery -A tasks beat` (rollup every
2 s via EVENTLOG_ROLLUP_INTERVAL) and a real worker on eventlog.rollup fill the
stats_* collections from stored events, and pick up events stored later."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from celeryconfig import ROLLUP_QUEUE
from deploy.stack import BIN, ROOT, Proc
from pipeline.rollups import read_daily
from tests.helpers.pipeline import Pipeline, wait_until

pytestmark = pytest.mark.integration

STATS = ("stats_daily", "stats_daily_site", "stats_hourly", "stats_buckets", "stats_bucket_rows",
         "stats_visit_buckets", "stats_visits", "stats_tutorials", "stats_watermarks")


def page_view(when: datetime, path: str, country: str = "India", code: str = "IN") -> dict[str, Any]:
    return {
        "_id": uuid.uuid4().hex, "path_info": path, "event_name": "event.home", "visited_by": "AnonymousUser",
        "ip_address": "10.0.0.1", "method": "GET", "datetime": when, "referrer": "", "page_title": "t",
        "browser_family": "Firefox", "browser_version": "1", "os_family": "Linux", "os_version": "",
        "device_family": "Other", "device_type": "PC", "first_time_visit": True, "country": country,
        "country_code": code, "region": None, "city": None, "latitude": None, "longitude": None,
        "view_args": [], "view_kwargs": {}, "post_data": None, "source": "middleware", "user_agent": "",
        "visitor_id": uuid.uuid4().hex, "is_bot": False, "stored_at": datetime.now(UTC),
        "updated_ts": datetime.now(UTC).timestamp(),  # as the store writes it: the rollups select by it
    }


def beat_proc(pipeline: Pipeline, tmp: Path, interval: float) -> Proc:
    """celery beat as `make up` runs it, with its own schedule file and a short interval."""
    cmd = [str(BIN / "celery"), "-A", "tasks", "beat", "--loglevel", "INFO", "-s", str(tmp / "celerybeat-schedule")]
    env = {**pipeline.env(), "EVENTLOG_ROLLUP_INTERVAL": str(interval)}
    return Proc("beat", cmd, env=env, log=tmp / "beat.log")


@pytest.fixture
def rollup_pipeline(make_pipeline, mongo) -> Iterator[tuple[Pipeline, Any]]:  # noqa: ANN001
    db = mongo.database
    for name in STATS:
        db[name].delete_many({})
    pipeline = make_pipeline()
    pipeline.worker(queues=ROLLUP_QUEUE, concurrency=1)
    yield pipeline, db


def test_beat_runs_the_rollups_on_a_real_worker(rollup_pipeline: tuple[Pipeline, Any]) -> None:
    pipeline, db = rollup_pipeline
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    marker = f"/beat-{uuid.uuid4().hex[:8]}/"
    db.website_logs.insert_many([page_view(yesterday + timedelta(hours=9), marker) for _ in range(3)]
                                + [page_view(today + timedelta(minutes=1), marker) for _ in range(2)])

    beat = beat_proc(pipeline, pipeline.tmp, 2.0).start()
    pipeline.procs.append(beat)  # stopped with the pipeline, whatever happens

    def views(day: datetime) -> int:
        rows = read_daily(db, day.date(), day.date(), limit=500)["top"]["path"]
        return sum(r["count"] for r in rows if r["key"] == marker)

    wait_until(lambda: views(yesterday) == 3 and views(today) == 2, 45, "beat's first rollups",
               interval=0.5)
    assert db.stats_daily.find_one({"_id": yesterday.date().isoformat()})["page_views"] >= 3
    assert db.stats_watermarks.find_one({"_id": "website_logs"}) is not None

    # Stored later: the next scheduled (incremental) run counts them.
    db.website_logs.insert_many([page_view(today + timedelta(minutes=2), marker, "Kenya", "KE")
                                 for _ in range(4)])
    wait_until(lambda: views(today) == 6, 30, "a later beat run to count new events", interval=0.5)
    top = read_daily(db, today.date(), today.date(), limit=500)["top"]["country"]
    assert any(r["key"] == "Kenya" and r["count"] >= 4 for r in top)

    beat.stop()
    log = (pipeline.tmp / "beat.log").read_text(errors="replace")
    assert log.count("Sending due task eventlog-rollup (eventlog.rollup.run)") >= 2
    worker_log = "".join(p.read_text(errors="replace") for p in pipeline.tmp.glob("*worker.log"))
    assert "eventlog.rollup.run" in worker_log and "succeeded" in worker_log


def test_the_schedule_reads_its_interval_from_the_environment() -> None:
    probe = "import beat_schedule as b; print(b.BEAT_SCHEDULE['eventlog-rollup']['schedule'])"
    run = subprocess.run([str(BIN / "python"), "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         env={"EVENTLOG_ROLLUP_INTERVAL": "2.5", "PATH": "/usr/bin:/bin"}, check=True)
    assert run.stdout.strip() == "2.5"
    default = subprocess.run([str(BIN / "python"), "-c", probe], cwd=ROOT, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"}, check=True)
    assert default.stdout.strip() == "60.0"
    bad = subprocess.run([str(BIN / "python"), "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         env={"EVENTLOG_ROLLUP_INTERVAL": "soon", "PATH": "/usr/bin:/bin"})
    assert bad.returncode != 0 and "EVENTLOG_ROLLUP_INTERVAL" in bad.stderr


def test_refresh_recomputes_recent_days_and_the_catalogue_orders_courses(mongo, monkeypatch) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    from demo.catalogue import CATALOGUE
    from pipeline.config import Settings
    from tasks import rollups as rollup_tasks

    db = mongo.database
    for name in STATS:
        db[name].delete_many({})
    monkeypatch.setattr(rollup_tasks, "event_store", lambda: SimpleNamespace(db=db))
    monkeypatch.setattr(rollup_tasks, "settings", lambda: Settings(progress_catalogue="demo.catalogue.course_for"))
    db.tutorial_progress_logs.delete_many({"username": "beat-learner"})
    db.tutorial_progress_logs.insert_many([
        {"username": "beat-learner", "foss": foss, "language": language, "tutorial": "x", "visits": 1}
        for foss, language in (("BASH", "Hindi"), ("Nope", "English"))])
    try:
        tutorials = rollup_tasks.catalogue_tutorials(db)
        assert tutorials["BASH"] == CATALOGUE["BASH"]["tutorials"] and "Nope" not in tutorials
        # An event stored without stored_at / updated_ts (imported) is only seen by a full recompute
        # of its day.
        marker = f"/refresh-{uuid.uuid4().hex[:8]}/"
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        doc = page_view(midnight + timedelta(seconds=1), marker)
        del doc["stored_at"], doc["updated_ts"]
        db.website_logs.insert_one(doc)
        today = midnight.date()
        assert rollup_tasks.refresh.run(days=1)["days"] == [today.isoformat()]
        rows = read_daily(db, today, today, limit=500)["top"]["path"]
        assert [r["count"] for r in rows if r["key"] == marker] == [1]
        assert rollup_tasks.run.run()["skipped"] is None
    finally:
        db.tutorial_progress_logs.delete_many({"username": "beat-learner"})
