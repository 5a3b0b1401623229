"""Beat's retention run: raw events older than EVENTLOG_RETENTION_DAYS go (pipeline.retention).

Named ``eventlog.rollup.retention`` so it runs on the rollup queue (celeryconfig's
``eventlog.rollup.*`` route), beside the rollups it must not run ahead of.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import PyMongoError

from pipeline import retention
from tasks.app import app
from tasks.resources import event_store, settings

log = logging.getLogger(__name__)


@app.task(name="eventlog.rollup.retention", acks_late=True, ignore_result=True)
def expire_raw_events() -> dict[str, Any]:
    """One bounded pass: TTL indexes kept in line with the setting, then batched deletes."""
    days = settings().retention_days
    db = event_store().db
    try:
        ttl = retention.ensure_ttl(db, days)
        result = retention.expire(db, days)
    except PyMongoError as exc:
        log.warning("eventlog retention: store unreachable (%s); the next run catches up", exc)
        return {"skipped": "store unreachable"}
    if result["waiting"]:
        log.info("eventlog retention: %s", result["waiting"])
    if any(result["deleted"].values()):
        log.info("eventlog retention: deleted %s (raw events before %s)", result["deleted"], result["cutoff"])
    return {"skipped": None, "ttl": ttl, **result,
            "cutoff": result["cutoff"].isoformat() if result["cutoff"] else None}
