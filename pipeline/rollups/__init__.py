"""Rollups: the figures behind the analytics dashboard, computed incrementally.

Plain Python + pymongo (no Django, no Celery). Beat calls :func:`run_rollups`;
the dashboard calls the read API (:mod:`.read`, docs/analytics-api.md), which
reads only the ``stats_*`` day documents, never the raw logs.

Design: small time buckets, recomputed whole, merged upwards
-----------------------------------------------------------
A run used to recompute every affected *day* whole, so its cost followed the size
of the day (113 s after 1,000 new events in a day of 300,000). Adding new events
onto running totals would follow the new events, but is neither idempotent nor
safe against redelivery, overlapping runs or late events. So the unit of
recomputation is made small instead, and the levels above it are merges:

1. **Select** the page views whose ``updated_ts`` (epoch seconds, stamped by the store on
   insert and on every change) is newer than the watermark, reaching back
   ``SAFETY_OVERLAP`` (:mod:`.selection`); a numeric range, because nx-27017 answers those
   from its index but scans the whole collection for a date range.
2. **Event buckets** (:mod:`.buckets`): each selected event goes into its
   ``BUCKET_SECONDS`` (2 min) bucket of ``datetime`` and site. A bucket keeps the compact
   rows of its events (``stats_bucket_rows``, keyed by event id) and figures recounted from
   them (``stats_buckets``): a redelivered or re-selected event replaces its own row, and a
   bucket whose rows did not change is not rewritten. A late event (offline replay:
   ``datetime`` old, ``updated_ts`` new) lands in its own, old bucket, and so in its own day.
3. **Visits** (:mod:`.visits`): the selected page views are folded into
   ``stats_visits`` (one document per visit, holding its page views); only visits
   within the visit gap of a selected event are re-derived. A visitor's stored visits are
   found by one indexed lookup per visitor, or, when a run folds many visitors for the
   visits stored (the first run, a refresh), in memory (:class:`.visits.VisitIndex`). The *visit
   buckets* of the visits that changed (by visit start) keep a row per visit: they are recounted
   from their rows with the changed visits' replaced (runs over many visitors: from ``stats_visits``).
4. **Merge** (:mod:`.merge`): each touched hour is re-merged from its ≤ 30 + 30
   bucket documents, each touched day from its ≤ 24 hour documents (the sum of the hours a run
   did not rewrite is kept in the process between runs, :mod:`.merged`).
5. Only then move the watermarks (the newest values seen in the data). The buckets a run is
   about to change are recorded before it writes them (:mod:`.journal`), so that a run killed
   before its merges has them merged by the next one.

Why buckets, and of 2 minutes: a run reads the buckets its events fall into, so the
work is the new events plus the rows already in their buckets (for new traffic: at most
the last 2 minutes of it) plus two bounded merges, whatever the size of the day; a late
event costs one old bucket, not its whole day. Smaller buckets would make hours merge
more documents; larger ones re-read more rows per run. The rows are kept (not re-read
from ``website_logs``) because nx-27017 scans the whole collection for a date range.
Why recompute rather than increment: every document is a pure function of the
level below, so two runs, two beat instances (a lease also keeps the second one
out), redelivered, re-selected or late events all give the same figures, and a
run that dies half way is repaired by the next (the watermarks had not moved, and the
journal names the buckets whose merges it did not finish).

Bucket rows, a visit's pages and every count table are stored packed, one JSON text each
(:mod:`.packing`): a store's cost follows the number of values it converts, and these are
only ever read whole.

Distinct counts (unique visitors, new visitors, logged-in users) are mergeable
sketches (:mod:`.sketch`: exact hash sets while small, HyperLogLog++ beyond), so a
30-day range counts each visitor once.

The first run (no watermark) is the same loop over every page view, in chunks (and
reads the page views without ``updated_ts``, e.g. imported ones, once); later page
views without it are counted by :func:`refresh_days` (the hourly refresh task), which
rebuilds whole days from the raw logs. Tutorial progress is a small snapshot,
recomputed whole each run (:mod:`.tutorials`).

Collections
-----------
``stats_bucket_rows``, ``stats_buckets`` / ``stats_visit_buckets`` (per bucket and site), ``stats_hourly``
(per hour and site), ``stats_daily_site`` (per day and site), ``stats_daily``
(per day, all sites; ``_id`` = ``YYYY-MM-DD``), ``stats_visits`` (per visit),
``stats_tutorials``, ``stats_watermarks`` (``website_logs``, ``exit_link_logs``,
``lock``, ``pending``, ``stats``). Day documents hold the flat figures the dashboard always read
(``page_views``, ``unique_visitors`` …), ``n`` (additive counts), ``t`` (count
tables: the dimensions, ``duration``, ``entry``, ``exit``, ``flow``, ``campaign``,
cut to the top ``TOP_N`` / ``FLOW_TOP`` keys), ``distinct`` (keys before the cut) and
``u`` (sketches). ``stats_daily_dim`` is no longer written.

Sites: every bucket is per ``site`` (``""`` for events without one), so the read
API filters by site at no extra cost.

nx-27017 (0.8.1) compatibility
------------------------------
Everything runs on real MongoDB and on nx-27017, which misbehaves on: date
comparisons inside an aggregation (all selection is ``find`` with date ranges,
whose bounds here are whole seconds, as nx compares dates to the second; all
counting is Python); compound ``$group`` keys, ``$cond`` in ``$sum`` (the tutorial
snapshot works around them); a top-level ``$or`` beside other fields (not used: the
lease takes two updates); filter strings that start with a date and go on
(``_id`` values here start with a kind letter, never with a day); updates that
``$set`` dates (documents are written whole with ``ReplaceOne`` including ``_id``;
the lease stores epoch seconds); ``$exists`` (``{$ne: null}`` instead). Its speed shapes the
rest: a date range scans the whole collection (selection is by the numeric ``updated_ts``),
every ``$in`` on a field other than ``_id`` reads every document (visitors are looked up one
equality at a time, or in memory), an equality uses an index only if one is named for that
field alone, and each value of a document costs it a Python call (:mod:`.packing`).
"""

from __future__ import annotations

from .common import (
    ANONYMOUS,
    BUCKET_SECONDS,
    COURSE_BUCKETS,
    DIMENSION_EXTRAS,
    DIMENSIONS,
    DURATION_LABELS,
    EXIT_LINK_LOGS,
    FLOW_TOP,
    HUMAN,
    STATS_BUCKET_ROWS,
    STATS_BUCKETS,
    STATS_DAILY,
    STATS_DAILY_DIM,
    STATS_DAILY_SITE,
    STATS_HOURLY,
    STATS_TUTORIALS,
    STATS_VISIT_BUCKETS,
    STATS_VISITS,
    STATS_WATERMARKS,
    TOP_N,
    TUTORIAL_PROGRESS_LOGS,
    WATCH_EVENT,
    WEBSITE_LOGS,
    Dimension,
    day_bounds,
    day_str,
    days_between,
    duration_label,
    referrer_host,
)
from .read import (
    read_campaigns,
    read_daily,
    read_distinct,
    read_entry_pages,
    read_exit_pages,
    read_paths,
    read_series,
    read_sites,
    read_summary,
    read_tutorials,
)
from .run import VISIT_GAP, ensure_indexes, refresh_days, rollup_day, rollup_state, run_rollups
from .selection import LOCK_TTL, SAFETY_OVERLAP, acquire_lock, release_lock
from .sketch import Distinct
from .tutorials import rollup_tutorials

__all__ = [
    "ANONYMOUS", "BUCKET_SECONDS", "COURSE_BUCKETS", "DIMENSIONS", "DIMENSION_EXTRAS", "DURATION_LABELS",
    "EXIT_LINK_LOGS", "FLOW_TOP", "HUMAN", "LOCK_TTL", "SAFETY_OVERLAP", "STATS_BUCKETS", "STATS_BUCKET_ROWS",
    "STATS_DAILY",
    "STATS_DAILY_DIM", "STATS_DAILY_SITE", "STATS_HOURLY", "STATS_TUTORIALS", "STATS_VISITS", "STATS_VISIT_BUCKETS",
    "STATS_WATERMARKS", "TOP_N", "TUTORIAL_PROGRESS_LOGS", "VISIT_GAP", "WATCH_EVENT", "WEBSITE_LOGS", "Dimension",
    "Distinct", "acquire_lock", "day_bounds", "day_str", "days_between", "duration_label", "ensure_indexes",
    "read_campaigns", "read_daily", "read_distinct", "read_entry_pages", "read_exit_pages", "read_paths",
    "read_series", "read_sites", "read_summary", "read_tutorials", "refresh_days", "release_lock",
    "referrer_host", "rollup_day", "rollup_state", "rollup_tutorials", "run_rollups",
]
