"""health/'s spool figures include the events a full spool dropped (tasks/health.py)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import load_settings
from pipeline.shipper import Shipper
from pipeline.spool import Spool
from tasks.health import health


def test_dropped_events_show_in_health(tmp_path: Path, mongo, redis_url: str) -> None:  # noqa: ANN001
    spool = Spool(tmp_path / "spool", max_bytes=200, measure_every=0)
    results = [spool.append({"n": n, "pad": "x" * 40}) for n in range(10)]
    Shipper(spool, lambda events: None).run_once()  # the shipper's pass saves the counter
    s = load_settings({"EVENTLOG_SPOOL_DIR": str(spool.directory), "EVENTLOG_SPOOL_MAX_BYTES": "200",
                       "EVENTLOG_MONGO_URL": mongo.url, "EVENTLOG_MONGO_DB": mongo.db,
                       "EVENTLOG_BROKER_URL": redis_url})
    _healthy, details = health(s)
    assert details["spool"]["dropped"] == results.count(False) > 0
    assert details["stages"]["spool"]["dropped"] == results.count(False)
    assert details["spool"]["max_bytes"] == 200
    spool.close()
