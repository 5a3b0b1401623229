"""Celery beat schedule (periodic rollups and maintenance); wired in celeryconfig.

EVENTLOG_ROLLUP_INTERVAL (seconds, default 60) is how often the incremental rollup
runs: the dashboard is at most that far behind the stored events. Tests set it to
a second or two.
"""

from __future__ import annotations

from celery.schedules import crontab

from pipeline.config import load_settings


def rollup_interval() -> float:
    value = load_settings().rollup_interval
    if value <= 0:
        raise ValueError(f"EVENTLOG_ROLLUP_INTERVAL={value!r} must be positive")
    return value


ROLLUP_INTERVAL = rollup_interval()

BEAT_SCHEDULE: dict = {
    # Incremental rollup. A run that waited longer than one interval is dropped
    # (expires): the next one does the same work, so a stopped worker does not
    # come back to a queue full of identical runs.
    "eventlog-rollup": {
        "task": "eventlog.rollup.run",
        "schedule": ROLLUP_INTERVAL,
        "options": {"expires": max(ROLLUP_INTERVAL, 10.0)},
    },
    # Hourly: recompute today and yesterday in full (events without stored_at).
    "eventlog-rollup-refresh": {
        "task": "eventlog.rollup.refresh",
        "schedule": crontab(minute=17),
        "kwargs": {"days": 2},
        "options": {"expires": 3000},
    },
    # Hourly: raw events past EVENTLOG_RETENTION_DAYS go, in bounded batches (rollups stay).
    "eventlog-retention": {
        "task": "eventlog.rollup.retention",
        "schedule": crontab(minute=41),
        "options": {"expires": 3000},
    },
}
