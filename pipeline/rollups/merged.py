"""Figures of several bucket, hour or day documents added together, and the sum of the
unchanged ones kept between runs.

Every run re-merges the hour and the day its new events fall into. On a busy day most of
that is the same work again: a day of 300,000 page views is 24 hours of tables cut to
thousands of keys each (flows, entry pages), decoded and added up after every minute's
events although only the current hour changed. :class:`MergeCache` keeps, in this
process, the sum of the documents a run did *not* rewrite, under the identity of those
documents (``_id`` and the ``run`` that wrote each), and the next run adds only what it
rewrote. A document rewritten by any other process or run has another ``run``, so its
sum no longer matches and is recomputed: the cache can make a run faster, never
different (the equivalence tests compare incremental runs with a first run).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from . import tables as tb
from .buckets import SKETCHES
from .sketch import Distinct, merge_all


class Merged:
    """Figures of several bucket/hour/day documents added together."""

    def __init__(self) -> None:
        self.n: dict[str, float] = {}
        self.tables: tb.Tables = {}
        self.sketches: dict[str, list[Any]] = {name: [] for name in SKETCHES}
        self.cut_from: dict[str, int] = {}
        self._shared = False  # count lists shared with another Merged (plus): copied before an add

    def add(self, doc: dict[str, Any], only: Iterable[str] | None = None) -> None:
        if self._shared:
            self.tables = {name: {key: counts[:] for key, counts in table.items()}
                           for name, table in self.tables.items()}
            self._shared = False
        for name, value in (doc.get("n") or {}).items():
            self.n[name] = self.n.get(name, 0) + (value or 0)
        for name, count in (doc.get("distinct") or {}).items():  # keys a level below had before its cut
            self.cut_from[name] = max(self.cut_from.get(name, 0), count)
        tb.decode_into(self.tables, doc, only)
        for name, sketch in (doc.get("u") or {}).items():
            self.sketches.setdefault(name, []).append(sketch)

    def distinct(self, name: str) -> Distinct:
        return merge_all(self.sketches.get(name, []))

    def plus(self, other: Merged) -> Merged:
        """A new sum of both; this one is left as it is. Rows only one side has are shared, not
        copied (a dict copy: a busy day's sum is tens of thousands of rows, a run adds a few)."""
        result = Merged()
        result.n = dict(self.n)
        for name, value in other.n.items():
            result.n[name] = result.n.get(name, 0) + value
        result.cut_from = {name: max(self.cut_from.get(name, 0), other.cut_from.get(name, 0))
                           for name in {*self.cut_from, *other.cut_from}}
        result.tables = {name: dict(table) for name, table in self.tables.items()}
        for name, table in other.tables.items():
            into = result.tables.setdefault(name, {})
            for key, counts in table.items():
                mine = into.get(key)
                into[key] = counts[:] if mine is None else [a + b for a, b in zip(mine, counts, strict=True)]
        result.sketches = {name: [*self.sketches.get(name, []), *other.sketches.get(name, [])]
                           for name in {*self.sketches, *other.sketches}}
        result._shared = True
        return result

    def compact(self) -> Merged:
        """The same figures with each sketch list merged into one sketch (a union: exact either way)."""
        self.sketches = {name: [merge_all(sketches).to_doc()] if len(sketches) > 1 else sketches
                         for name, sketches in self.sketches.items()}
        return self


def merged(docs: Iterable[dict[str, Any]]) -> Merged:
    result = Merged()
    for doc in docs:
        result.add(doc)
    return result


class MergeCache:
    """Per group (a day of a site): the sum of the documents a run did not write.

    At most ``entries`` groups (least recently used dropped): a busy day's sum holds tens of
    thousands of table rows, and only the newest days are merged run after run.
    """

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._sums: OrderedDict[Any, tuple[tuple[tuple[str, str], ...], Merged]] = OrderedDict()
        self._lock = threading.Lock()

    def merged(self, group: Any, docs: Iterable[dict[str, Any]], run: str) -> Merged:
        """The sum of ``docs``: of those ``run`` wrote, added to the kept sum of the others (which
        the result shares rows with: it copies them before an ``add``)."""
        docs = list(docs)
        own = [d for d in docs if run and d.get("run") == run]
        others = [d for d in docs if not (run and d.get("run") == run)]
        identity = tuple(sorted((str(d["_id"]), str(d.get("run") or "")) for d in others))
        if not run or any(not r for _id, r in identity):  # written before documents had a run: no identity
            return merged(docs)
        with self._lock:
            kept = self._sums.get(group)
            if kept is not None and kept[0] == identity:
                self._sums.move_to_end(group)
                base = kept[1]
            else:
                base = merged(others).compact()
                self._sums[group] = (identity, base)
                while len(self._sums) > self.entries:
                    self._sums.popitem(last=False)
        return base.plus(merged(own))
