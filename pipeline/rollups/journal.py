"""The buckets a run is about to change, recorded before it changes them.

A run writes the lowest levels first (event bucket figures and rows, visits) and merges
upwards at its end (visit buckets, hours, days). A run killed in between leaves the lowest
levels new and the merges old; the next run re-selects the same events (the watermark had not
moved), finds them already in their buckets and visits, and so would change nothing and merge
nothing: the hours and days of those events stayed stale until other events touched them (for
an offline replay into an old day: for good). So a run records the buckets it is about to
change in ``stats_watermarks`` (``_id`` ``pending``) before each write, and deletes the record
once its days are written; the next run starts with the recorded buckets, recomputes their
visit buckets and re-merges their hours and days.

Recorded by hour (the hour of each bucket): a first run changes thousands of buckets, each new
one would rewrite the record, and a repair that recounts an hour's 30 visit buckets costs little.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from .common import HOUR, STATS_WATERMARKS, floor_to
from .packing import pack, unpack

PENDING = "pending"


class Journal:
    """The hours of the pending event and visit buckets (epoch seconds of their start) of one run.

    Starts with what a run that died left; the run's folds add to it (from two threads:
    events and visits are folded side by side), each addition written before the writes
    it announces.
    """

    def __init__(self, db: Any) -> None:
        self.db = db
        doc = db[STATS_WATERMARKS].find_one({"_id": PENDING}) or {}
        self.event: set[int] = set(unpack(doc.get("event")) or [])
        self.visit: set[int] = set(unpack(doc.get("visit")) or [])
        self.left = bool(doc)  # what a run that died left
        self._lock = threading.Lock()

    def add(self, event: Iterable[int] = (), visit: Iterable[int] = ()) -> None:
        """Record buckets about to change (a write to the store when the hour of any is new)."""
        with self._lock:
            new_event = {floor_to(b, HOUR) for b in event} - self.event
            new_visit = {floor_to(b, HOUR) for b in visit} - self.visit
            if not new_event and not new_visit:
                return
            self.event |= new_event
            self.visit |= new_visit
            # Packed: one value for the store, however many hours.
            record = {"_id": PENDING, "event": pack(sorted(self.event)), "visit": pack(sorted(self.visit))}
            self.db[STATS_WATERMARKS].replace_one({"_id": PENDING}, record, upsert=True)
            self.left = True

    def done(self) -> None:
        """Every recorded bucket is merged into its hour and day: forget them."""
        with self._lock:
            if self.left:
                self.db[STATS_WATERMARKS].delete_one({"_id": PENDING})
            self.event, self.visit, self.left = set(), set(), False


def pending_hours(db: Any) -> int:
    """How many hours a run has written and not merged yet (one in progress, or one that died)."""
    doc = db[STATS_WATERMARKS].find_one({"_id": PENDING}) or {}
    return len(set(unpack(doc.get("event")) or []) | set(unpack(doc.get("visit")) or []))
