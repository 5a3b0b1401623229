"""The dashboard's query parameters: the date range ``?start=YYYY-MM-DD&end=YYYY-MM-DD``
(UTC days, inclusive) and the paths panel's filter ``?entry=<path>&event=<event name>``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

DEFAULT_DAYS = 30
MAX_DAYS = 731  # two years: the read API lists every day of the range
PRESETS = (("7d", 7), ("30d", 30), ("90d", 90), ("1y", 365))
PATH_FILTERS = ("entry", "event")
MAX_FILTER = 2000  # characters: longer than any path the store keeps
MAX_SITE = 255  # pipeline.sites.MAX_SITE


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    site: str | None = None  # ?site=: one site's figures (the `site` field of events); None: all sites

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def query(self, **extra: Any) -> str:
        site = {"site": self.site} if self.site is not None else {}
        return urlencode({"start": self.start.isoformat(), "end": self.end.isoformat(), **site, **extra})


def default_range(today: date | None = None, days: int = DEFAULT_DAYS) -> DateRange:
    today = today or datetime.now(UTC).date()
    return DateRange(today - timedelta(days=days - 1), today)


def parse_range(params: Any, today: date | None = None) -> DateRange:
    """The range of ``?start=&end=``; ValueError (with a message for the user) if invalid."""
    fallback = default_range(today)
    try:
        end = date.fromisoformat(params["end"]) if params.get("end") else fallback.end
        start = date.fromisoformat(params["start"]) if params.get("start") else end - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError as exc:
        raise ValueError("dates must be YYYY-MM-DD") from exc
    if start > end:
        raise ValueError("the start date is after the end date")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValueError(f"a range may span at most {MAX_DAYS} days")
    site = params.get("site")
    return DateRange(start, end, str(site)[:MAX_SITE] if site else None)


def presets(today: date) -> list[dict[str, str]]:
    """The 7d/30d/90d/1y links of the range picker."""
    return [{"label": label, "query": default_range(today, days).query()} for label, days in PRESETS]


def path_filter(params: Any) -> dict[str, str]:
    """The paths panel's filter (``entry``: an entry page, ``event``: the entry page's event name); "" is none."""
    return {name: str(params.get(name, ""))[:MAX_FILTER] for name in PATH_FILTERS}
