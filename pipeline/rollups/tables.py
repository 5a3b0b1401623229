"""Count tables: the breakdowns a bucket, an hour or a day holds, and how they merge.

A table maps a key (a tuple: the dimension's value and its extras) to a list of
counts; merging adds the counts. Stored as a list of rows
``[key..., count...]`` (keys such as paths may hold "." or "$", so they cannot be
field names), packed into one JSON text per table (:mod:`.packing`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from .common import DIMENSIONS
from .packing import pack, unpack

# counts per row of each table; every other table (the page view dimensions) has one
COUNT_WIDTH = {"entry": 5, "exit": 2, "flow": 1, "campaign": 3}
KEY_WIDTH = {**{d.name: 1 + len(d.extras) for d in DIMENSIONS}, "duration": 1, "entry": 2, "exit": 1,
             "flow": 9, "campaign": 3}
# Names of the counts, for readers.
ENTRY_COUNTS = ("visits", "bounces", "reached_2", "reached_3", "reached_4")
EXIT_COUNTS = ("visits", "bounces")
CAMPAIGN_COUNTS = ("visits", "page_views", "bounces")

Table = dict[tuple[Any, ...], list[float]]
Tables = dict[str, Table]


def add(tables: Tables, name: str, key: tuple[Any, ...], counts: Iterable[float] = (1,)) -> None:
    row = tables.setdefault(name, {}).get(key)
    values = list(counts)
    if row is None:
        tables[name][key] = values
    else:
        for i, v in enumerate(values):
            row[i] += v


PREFIX = "t_"  # tables are top-level fields: nx-27017 mangles projections of nested fields


def field(name: str) -> str:
    return PREFIX + name


def encode(tables: Tables) -> dict[str, str]:
    """The tables as document fields (``t_<name>``: its packed rows), rows in key order (documents
    are then the same whatever order the events arrived in)."""
    return {field(name): pack([[*key, *table[key]] for key in sorted(table, key=_order)])
            for name, table in sorted(tables.items())}


def rows(doc: dict[str, Any], name: str) -> list[list[Any]]:
    """The stored rows ``[key..., count...]`` of one table of a document."""
    return unpack(doc.get(field(name))) or []


def _order(key: tuple[Any, ...]) -> list[str]:
    return [repr(part) for part in key]


def decode_into(tables: Tables, doc: dict[str, Any], only: Iterable[str] | None = None) -> None:
    """Add the rows of the tables stored in ``doc`` into ``tables`` (all, or those named in ``only``)."""
    wanted = set(only) if only is not None else None
    for key_name, rows in doc.items():
        if not key_name.startswith(PREFIX):
            continue
        name = key_name[len(PREFIX):]
        if wanted is not None and name not in wanted:
            continue
        width = KEY_WIDTH.get(name, 1)
        table = tables.setdefault(name, {})
        for row in unpack(rows) or []:
            key, counts = tuple(row[:width]), row[width:]
            current = table.get(key)
            if current is None:
                table[key] = list(counts)
            else:
                for i, v in enumerate(counts):
                    current[i] += v


def top(table: Table, limit: int | None, index: int = 0) -> list[tuple[tuple[Any, ...], list[float]]]:
    """Rows by count ``index`` (descending), then key; at most ``limit``."""
    items: Iterable[tuple[tuple[Any, ...], list[float]]] = table.items()
    if limit is not None and len(table) > limit:
        # Only rows that can make the cut get the (costly) ordering by key: those counting at
        # least the limit-th largest count. A day's merge cuts tables of thousands of rows.
        floor = heapq.nlargest(limit, (counts[index] for counts in table.values()))[-1]
        items = [kv for kv in items if kv[1][index] >= floor]
    ordered = sorted(items, key=lambda kv: (-kv[1][index], [("" if p is None else str(p)) for p in kv[0]]))
    return ordered if limit is None else ordered[:limit]


def cut(tables: Tables, limits: dict[str, int | None]) -> tuple[Tables, dict[str, int]]:
    """Each table cut to its limit (by its first count); and how many keys each had."""
    distinct = {name: len(table) for name, table in tables.items()}
    return {name: dict(top(table, limits.get(name))) for name, table in tables.items()}, distinct
