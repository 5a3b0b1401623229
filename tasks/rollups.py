"""Queue eventlog.rollup: the periodic rollups behind the dashboard (beat schedules them).

``eventlog.rollup.run`` is one incremental, idempotent run of
:func:`pipeline.rollups.run_rollups` (new events since the watermark; the tutorial
snapshot). ``eventlog.rollup.refresh`` recomputes the last few days whatever the
watermark says: a safety net for events stored without ``stored_at`` (imported or
written by an older version), which an incremental run does not select.

Both are safe to run twice or concurrently: a day's figures are a pure function of
its raw events, and a lease in ``stats_watermarks`` keeps two runs from writing at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from pipeline import rollups
from pipeline.loading import SettingError, load_optional
from tasks.app import app
from tasks.resources import event_store, settings

log = logging.getLogger(__name__)


def _catalogue() -> Callable[[str, str], Any] | None:
    """The site's course function (EVENTLOG_PROGRESS_CATALOGUE: (foss, language) -> tutorials), if set."""
    try:
        return load_optional("EVENTLOG_PROGRESS_CATALOGUE", settings().progress_catalogue)
    except SettingError as exc:
        # A rollup must not stop over it (`manage.py check` reports it as eventlog.E004).
        log.warning("eventlog rollups: %s; courses are the tutorials seen in the logs", exc)
        return None


def _title(entry: Any) -> str:
    return entry["title"] if isinstance(entry, dict) else str(entry)


def catalogue_tutorials(db: Any) -> dict[str, list[str]] | None:
    """foss -> the titles of its tutorials, from the site's catalogue, for the fosses learners started.

    The catalogue answers per (foss, language); a course has the same tutorials in
    every language, so the first language that the catalogue knows is enough.
    None when no catalogue is configured (the rollups then use the titles seen).
    """
    course_of = _catalogue()
    if course_of is None:
        return None
    progress = db[rollups.TUTORIAL_PROGRESS_LOGS]
    tutorials: dict[str, list[str]] = {}
    for row in progress.aggregate([{"$group": {"_id": "$foss"}}]):
        foss = row["_id"]
        if not isinstance(foss, str):
            continue
        by_language = [{"$match": {"foss": foss}}, {"$group": {"_id": "$language"}}]
        languages = [r["_id"] for r in progress.aggregate(by_language)]
        for language in sorted(lang for lang in languages if isinstance(lang, str)):
            course = course_of(foss, language)
            if course:
                tutorials[foss] = [_title(entry) for entry in course]
                break
    return tutorials


def _visit_gap() -> timedelta:
    return timedelta(minutes=settings().visit_gap_minutes)


@app.task(name="eventlog.rollup.run", acks_late=True, ignore_result=True)
def run(tutorials: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """One incremental rollup run; returns what run_rollups did (days, events, watermarks)."""
    db = event_store().db
    try:
        result = rollups.run_rollups(db, tutorials=tutorials or catalogue_tutorials(db), visit_gap=_visit_gap())
    except PyMongoError as exc:
        # The next beat tick tries again: nothing moved the watermarks, and every stats
        # document is recomputed whole, so a run cut short is repaired by the next one.
        log.warning("eventlog rollups: store unreachable (%s); next run will catch up", exc)
        return {"skipped": "store unreachable", "days": [], "events": 0}
    if result["skipped"]:
        log.info("eventlog rollups: skipped (%s)", result["skipped"])
    else:
        log.info("eventlog rollups: %d events seen, %d buckets recomputed, %d visits written, days %s",
                 result["events"], result["buckets"], result["visits"], ",".join(result["days"][-5:]))
    return result


@app.task(name="eventlog.rollup.refresh", acks_late=True, ignore_result=True)
def refresh(days: int = 2) -> dict[str, Any]:
    """Recompute the last ``days`` UTC days (today included) from the raw logs, under the rollup lease."""
    db = event_store().db
    today = datetime.now(UTC).date()
    wanted = [today - timedelta(days=back) for back in range(max(1, days) - 1, -1, -1)]
    try:
        result = rollups.refresh_days(db, wanted, visit_gap=_visit_gap())
    except PyMongoError as exc:
        log.warning("eventlog rollups: refresh failed, store unreachable (%s)", exc)
        return {"skipped": "store unreachable", "days": []}
    log.info("eventlog rollups: refreshed %s", ",".join(result["days"]))
    return {"skipped": result["skipped"], "days": result["days"]}
