"""One rollup run (what beat schedules), a refresh of whole days, and the first run."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

from . import merge, visits
from .common import (
    BUCKET_SECONDS,
    DAY,
    EXIT_LINK_LOGS,
    HOUR,
    STATS_STAMP,
    STATS_TUTORIALS,
    STATS_VISITS,
    STATS_WATERMARKS,
    WEBSITE_LOGS,
    as_date,
    as_utc,
    day_bounds,
    day_str,
    epoch,
    floor_to,
    from_epoch,
    is_number,
)
from .journal import Journal, pending_hours
from .selection import (
    LOCK_TTL,
    SAFETY_OVERLAP,
    SELECT_FIELDS,
    Seen,
    acquire_lock,
    exit_links_since,
    marks_of,
    newest_ts,
    page_view_chunks,
    prefetched,
    release_lock,
    unstamped_chunks,
    write_watermarks,
)
from .tutorials import rollup_tutorials

log = logging.getLogger(__name__)

VISIT_GAP = timedelta(minutes=30)
# Visit buckets this many buckets apart are recomputed in one run (merge.runs) when a run folds
# many visitors (a first run touches most buckets of a month): a query costs nx-27017
# milliseconds, the visits of a quiet bucket less.
VISIT_RUN_JOIN = 4
# Stored visits a run may index in memory (visits.VisitIndex: about 150 bytes each), and how many
# lookups of one visitor cost what one read of every stored visit's end costs (nx-27017: about
# 1.5 ms a lookup, 0.1 ms a visit read).
INDEX_VISITS_MAX = 2_000_000
LOOKUP_COST_RATIO = 15


class LeaseLost(RuntimeError):
    """Another run took the lease (this one took longer than its TTL)."""


class _Run:
    """State of one run: what it recomputed, and the lease it must keep."""

    def __init__(self, db: Any, owner: str, now: datetime, size: int, gap: float, lock_ttl: float) -> None:
        self.db, self.owner, self.now, self.size, self.gap, self.lock_ttl = db, owner, now, size, gap, lock_ttl
        # What a run that died between its writes and its merges left (journal.py, by hour) is merged again.
        self.journal = Journal(db)
        self.left_hours = self.journal.event | self.journal.visit
        self.event_buckets: set[int] = set()
        self.visit_buckets: set[int] = set()
        # Visit buckets recounted from stats_visits (those a dead run left, refreshed days); the
        # others from their rows with the changed visits' rows replaced (merge.update_visit_buckets).
        self.recount_visit_buckets = {b for hour in self.journal.visit for b in range(hour, hour + HOUR, size)}
        self.visit_changes: dict[tuple[int, str], dict[str, Any]] = {}
        self.visits_written = 0
        self.events = 0
        # Set once a fold has many visitors for the visits stored (visits.VisitIndex).
        self.visit_index: visits.VisitIndex | None = None

    def index_visits_for(self, page_views: list[dict[str, Any]]) -> None:
        """Look visits up in memory from now on, when that is cheaper than one query per visitor.

        One read of every stored visit's end costs about what LOOKUP_COST_RATIO lookups of a
        visitor cost, so a fold of more visitors than stored visits / LOOKUP_COST_RATIO (every
        first run, a refresh of a day, a run after a long pause) indexes them once for the run.
        """
        if self.visit_index is not None:
            return
        visitors = {d.get("visitor_id") for d in page_views} - {None}
        stored = self.db[STATS_VISITS].estimated_document_count()
        if stored <= INDEX_VISITS_MAX and len(visitors) * LOOKUP_COST_RATIO > stored:
            self.visit_index = visits.VisitIndex.load(self.db)

    def renew(self) -> None:
        if not acquire_lock(self.db, self.owner, self.lock_ttl):
            raise LeaseLost

    def fold(self, page_views: list[dict[str, Any]], exit_links: list[dict[str, Any]], fresh: bool = False) -> None:
        """New or changed events into their event buckets and into visits.

        The two are independent (other collections, no shared state), so visits are folded in a
        thread meanwhile: each spends half its time waiting for the store, which the other fills.
        """
        self.events += len(page_views)
        self.index_visits_for(page_views)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventlog-rollup-visits") as pool:
            sessions = pool.submit(visits.sessionize, self.db, page_views, self.gap, self.visit_index,
                                   self.journal_visits)
            self.event_buckets |= merge.fold_events(self.db, page_views, exit_links, self.size, self.now, fresh,
                                                    self.journal_events)
            touched, written, changes = sessions.result()
        self.took_visits(touched, written, changes)
        self.renew()

    def took_visits(self, touched: visits.Touched, written: int, changes: visits.Changes) -> None:
        self.visits_written += written
        self.visit_buckets.update(floor_to(ts, self.size) for ts, _site in touched)
        if self.visit_index is None:  # a run over many visitors recounts whole buckets anyway (finish)
            for ts, site, visit_id, row in changes:
                self.visit_changes.setdefault((floor_to(ts, self.size), site), {})[visit_id] = row

    def journal_events(self, buckets: set[int]) -> None:
        self.journal.add(event=buckets)

    def journal_visits(self, touched: set[tuple[float, str]]) -> None:
        self.journal.add(visit={floor_to(ts, self.size) for ts, _site in touched})

    def refresh_day(self, day: date) -> None:
        """Rebuild a day's event buckets from the raw logs, and the visits that started that day.

        The day's visits are dropped and re-derived from the raw page views from the day's
        start to the end of its last visit (which may run into the next day).
        """
        start, end = day_bounds(day)
        first = int(epoch(start))
        whole_day = range(first, first + DAY, self.size)
        self.journal.add(event=whole_day, visit=whole_day)  # its visits are dropped next
        dropped = visits.drop_visits_starting(self.db, first, first + DAY)
        self.visit_buckets.update(floor_to(ts, self.size) for ts in dropped)
        self.recount_visit_buckets.update(whole_day)
        until = max([end, *(from_epoch(ts) for ts in dropped.values())])
        window = {"datetime": {"$gte": start, "$lt": end}}
        page_views = list(self.db[WEBSITE_LOGS].find({"datetime": {"$gte": start, "$lte": until}}, SELECT_FIELDS))
        exit_links = list(self.db[EXIT_LINK_LOGS].find(window, {"datetime": 1, "exit_link": 1, "site": 1}))
        today = [d for d in page_views if isinstance(d.get("datetime"), datetime) and d["datetime"] < end]
        self.events += len(today)
        self.event_buckets |= merge.fold_events(self.db, today, exit_links, self.size, self.now, fresh=True,
                                                before_write=self.journal_events)
        self.index_visits_for(page_views)
        self.took_visits(*visits.sessionize(self.db, page_views, self.gap, self.visit_index, self.journal_visits))
        self.renew()
        kept = {b for b in self.event_buckets if first <= b < first + DAY}
        merge.clear_event_buckets(self.db, first, first + DAY - self.size, kept)
        self.event_buckets.update(whole_day)

    def finish(self) -> list[str]:
        """Recompute the touched visit buckets, then re-merge the hours and days touched; returns the days."""
        # Joined only in runs over many visitors: a few touched buckets of a busy day are cheaper
        # one by one than with the buckets between them, each holding its visits.
        join = VISIT_RUN_JOIN * self.size if self.visit_index is not None else 0
        recount = self.recount_visit_buckets | (self.visit_buckets if self.visit_index is not None else set())
        changes = {key: rows for key, rows in self.visit_changes.items() if key[0] not in recount}
        recount = recount | merge.update_visit_buckets(self.db, changes, self.now)
        for first, last in merge.runs(recount, self.size, DAY, join=join):
            merge.write_visit_range(self.db, first, last, self.size, self.now)
        self.renew()
        hours = merge.hours_of(self.event_buckets | self.visit_buckets | self.recount_visit_buckets) | self.left_hours
        days = merge.write_hours(self.db, hours, self.now, self.owner)
        self.renew()
        merge.write_days(self.db, days, self.now, self.owner)
        self.journal.done()
        if days:  # readers cache day documents until this changes (read._docs)
            self.db[STATS_WATERMARKS].replace_one({"_id": STATS_STAMP}, {"_id": STATS_STAMP, "run": uuid.uuid4().hex,
                                                                         "at": self.now}, upsert=True)
        return sorted(days)


def ensure_indexes(db: Any) -> None:
    merge.ensure_indexes(db)
    visits.ensure_indexes(db)
    db[STATS_TUTORIALS].create_index("kind")
    # The selection's index (the store creates it too; rollups must not depend on that).
    db[WEBSITE_LOGS].create_index("updated_ts")


def rollup_state(db: Any, now: datetime | None = None) -> dict[str, Any]:
    """What an operator asks of the rollups (health/, ``python -m tasks status``): how long ago a run
    last finished, whether one holds the lease now, and how many hours wait for their merge (while
    a run works; after a run died, until the next one repairs them)."""
    now = now or datetime.now(UTC)
    mark = db[STATS_WATERMARKS].find_one({"_id": WEBSITE_LOGS}, {"updated_at": 1}) or {}
    lease = db[STATS_WATERMARKS].find_one({"_id": "lock"}, {"expires": 1}) or {}
    finished = mark.get("updated_at")
    return {
        "rollups_age_seconds": round((now - as_utc(finished)).total_seconds(), 1)
        if isinstance(finished, datetime) else None,
        "rollups_running": is_number(lease.get("expires")) and lease["expires"] > now.timestamp(),
        "rollups_pending_hours": pending_hours(db),
    }


def _skipped(reason: str, seen: int = 0) -> dict[str, Any]:
    return {"skipped": reason, "days": [], "events": seen, "buckets": 0, "visits": 0, "watermarks": {},
            "tutorials": {}}


def run_rollups(db: Any, now: datetime | None = None, tutorials: dict[str, list[str]] | None = None,
                overlap: timedelta = SAFETY_OVERLAP, lock_ttl: float = LOCK_TTL,
                visit_gap: timedelta = VISIT_GAP, bucket_seconds: int = BUCKET_SECONDS) -> dict[str, Any]:
    """One incremental, idempotent rollup run (what beat schedules).

    ``tutorials`` maps foss -> the titles of its tutorials (the course), used for
    the course progress distribution. Returns what was done::

        {"skipped": None | "locked" | "lease lost", "days": ["YYYY-MM-DD", ...], "events": n,
         "buckets": n, "visits": n, "watermarks": {...}, "tutorials": {...}}

    The first run (no watermark) is the same loop over every page view.
    """
    now = now or datetime.now(UTC)
    owner = uuid.uuid4().hex
    if not acquire_lock(db, owner, lock_ttl):
        log.info("eventlog rollups: another run holds the lease; skipping")
        return _skipped("locked")
    run = _Run(db, owner, now, bucket_seconds, visit_gap.total_seconds(), lock_ttl)
    try:
        ensure_indexes(db)
        marks = marks_of(db)
        since = marks[WEBSITE_LOGS].get("updated_ts")
        newest = since
        exit_links, marks[EXIT_LINK_LOGS] = exit_links_since(db, marks[EXIT_LINK_LOGS], overlap)
        seen = Seen(marks[WEBSITE_LOGS], overlap)
        for chunk in prefetched(page_view_chunks(db, None if since is None else since - overlap.total_seconds())):
            newest = newest_ts(chunk, newest)
            fresh = seen.unseen(chunk, newest)
            if fresh or exit_links:
                run.fold(fresh, exit_links)
                exit_links = []
        if since is None:  # the first run also counts what has no updated_ts (imported page views)
            for chunk in prefetched(unstamped_chunks(db)):
                run.fold(chunk, exit_links)
                exit_links = []
        if exit_links:
            run.fold([], exit_links)
        days = run.finish()
        marks[WEBSITE_LOGS] = {"updated_ts": newest, "seen": seen.mark(newest)}
        write_watermarks(db, marks, now)
        tutorial_summary = rollup_tutorials(db, tutorials, now)
    except LeaseLost:
        log.warning("eventlog rollups: lease lost; leaving the rest to the next run")
        return _skipped("lease lost")
    finally:
        release_lock(db, owner)
    return {
        "skipped": None, "days": days, "events": run.events, "buckets": len(run.event_buckets),
        "visits": run.visits_written,
        "watermarks": {name: {k: v.isoformat() if isinstance(v, datetime) else v for k, v in mark.items()
                              if k not in ("_id", "updated_at", "seen")} for name, mark in marks.items()},
        "tutorials": tutorial_summary,
    }


def refresh_days(db: Any, days: Iterable[date | datetime | str], now: datetime | None = None,
                 lock_ttl: float = LOCK_TTL, visit_gap: timedelta = VISIT_GAP,
                 bucket_seconds: int = BUCKET_SECONDS) -> dict[str, Any]:
    """Rebuild whole days from the raw logs, whatever the watermarks say (a safety net for
    events stored without ``updated_ts``); under the lease. Their visits are re-derived."""
    now = now or datetime.now(UTC)
    owner = uuid.uuid4().hex
    if not acquire_lock(db, owner, lock_ttl):
        return _skipped("locked")
    run = _Run(db, owner, now, bucket_seconds, visit_gap.total_seconds(), lock_ttl)
    try:
        ensure_indexes(db)
        for day in sorted({as_date(d) for d in days}):
            run.refresh_day(day)
        done = run.finish()
    except LeaseLost:
        return _skipped("lease lost")
    finally:
        release_lock(db, owner)
    return {"skipped": None, "days": done, "events": run.events, "buckets": len(run.event_buckets),
            "visits": run.visits_written}


def rollup_day(db: Any, day: date | datetime | str, now: datetime | None = None) -> dict[str, Any] | None:
    """Recompute one UTC day (kept for callers of the old API); returns its stats_daily document."""
    refresh_days(db, [day], now)
    return db["stats_daily"].find_one({"_id": day_str(as_date(day))})
