"""A rollup run SIGKILLed while it writes: the next run leaves the documents one clean run writes.

The run is a real process (``python -c`` calling ``run_rollups``, small chunks so that it
spends seconds between its first bucket write and its merges) killed with SIGKILL as soon as
its first event bucket is stored; its lease (a short TTL) then expires, and the next run must
merge what the dead one wrote but did not merge (pipeline/rollups/journal.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from deploy.stack import ROOT
from loadtest.dashboard_bench import generate_events
from pipeline.rollups import run_rollups
from tests.helpers.mongo import figures_of, private_database

pytestmark = pytest.mark.integration

NOW = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)
STATS = ("stats_daily", "stats_daily_site", "stats_hourly", "stats_buckets", "stats_bucket_rows",
         "stats_visit_buckets", "stats_visits")
RUN = """
import sys
from datetime import datetime
import pymongo
from pipeline.rollups import run_rollups, selection
selection.CHUNK = 500
db = pymongo.MongoClient(sys.argv[1], tz_aware=True)[sys.argv[2]]
run_rollups(db, now=datetime.fromisoformat(sys.argv[3]), lock_ttl=1.0)
"""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with private_database(tmp_path_factory.mktemp("nx-rollup-kill"), "eventlog_rollup_kill") as database:
        yield database


def killed_run(db: Any) -> None:
    """Start a run in its own process and SIGKILL it once it has stored an event bucket."""
    host, port = db.client.address
    url = os.environ.get("EVENTLOG_MONGO_URL") or f"mongodb://{host}:{port}"
    proc = subprocess.Popen([sys.executable, "-c", RUN, url, db.name, NOW.isoformat()], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while db.stats_buckets.estimated_document_count() == 0:
            assert proc.poll() is None, "the run ended before it stored a bucket"
            assert time.monotonic() < deadline, "no bucket stored in 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_a_run_killed_while_it_writes_is_repaired_by_the_next(db: Any) -> None:
    events = sorted(generate_events(6000, 3, seed=11, end=NOW), key=lambda d: d["updated_ts"])
    db.website_logs.insert_many(events)
    killed_run(db)
    assert db.stats_hourly.estimated_document_count() < 72  # killed before it merged every hour
    deadline = time.monotonic() + 30
    while (result := run_rollups(db, now=NOW))["skipped"] == "locked":  # the dead run's lease, 1 s
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert result["skipped"] is None
    repaired = {name: figures_of(db[name]) for name in STATS}
    for name in (*STATS, "stats_watermarks"):
        db[name].delete_many({})
    run_rollups(db, now=NOW)
    assert {name: figures_of(db[name]) for name in STATS} == repaired
    assert repaired["stats_daily"] and sum(d["page_views"] for d in repaired["stats_daily"]) == len(
        [e for e in events if not e["is_bot"]])
