"""The dashboard's tables: their columns and how each is built from the read API's answers.

A builder takes ``src``, the read API's answers for one range (``src["daily"]``,
``src["tutorials"]``, ...; see :func:`django_hook.dashboard.data.compute`) and
returns the table's rows as plain dicts: the page shows the first rows, the
exports all of them, under the same column keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django_hook.request_info import is_site_host
from pipeline import rollups

Rows = list[dict[str, Any]]
Builder = Callable[[dict[str, Any]], Rows]
INTERNAL_REFERRER = "(this site)"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | int | pct | float | seconds | country


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[Column, ...]
    build: Builder


def _dim(name: str, **rename: str) -> Builder:
    """Rows of a read_daily top list: its key renamed, extras kept, share of human page views."""

    def build(src: dict[str, Any]) -> Rows:
        daily = src["daily"]
        total = daily["totals"]["page_views"] or 0
        rows = []
        for row in daily["top"].get(name, []):
            out = {rename.get(k, k): v for k, v in row.items()}
            out["share"] = row["count"] / total if total and name not in ("bot", "exit_link") else None
            rows.append(out)
        return rows

    return build


def _dnt(src: dict[str, Any]) -> Rows:
    """The page views sent with Do Not Track or GPC, as one row (the others are marked ``dnt: false``)."""
    count = sum(row["count"] for row in _dim("dnt", key="dnt")(src) if row["dnt"] == "true")
    if not count:
        return []
    total = src["daily"]["totals"]["page_views"] or 0
    return [{"signal": "Do Not Track or GPC", "count": count, "share": count / total if total else None}]


def _referrers(src: dict[str, Any]) -> Rows:
    """Referrer hosts, with navigation inside the site folded into one row (as analytics tools show it)."""
    rows: Rows = []
    internal: dict[str, Any] = {"referrer": INTERNAL_REFERRER, "count": 0, "share": None}
    for row in _dim("referrer", key="referrer")(src):
        if is_site_host(str(row["referrer"]), allow_wildcard=False):
            internal["count"] += row["count"]
            internal["share"] = (internal["share"] or 0) + (row["share"] or 0)
        else:
            rows.append(row)
    if internal["count"]:
        rows.append(internal)
    return sorted(rows, key=lambda r: -r["count"])


def _traffic(src: dict[str, Any]) -> Rows:
    keys = ("day", "page_views", "unique_visitors", "visits", "bounce_rate", "pages_per_visit", "visit_duration_avg",
            "new_visitors", "logged_in_users", "bot_views", "tutorial_views", "exit_clicks", "duration_avg")
    return [{k: d.get(k) for k in keys} for d in src["daily"]["days"]]


def _durations(src: dict[str, Any]) -> Rows:
    return list(src["daily"]["duration"])


def _rows(name: str) -> Builder:
    """A read API list as it comes (entry and exit pages, campaigns)."""

    def build(src: dict[str, Any]) -> Rows:
        return [dict(row) for row in src.get(name) or []]

    return build


PATH_STEPS = 4  # the entry page and the next 3 (what read_paths keeps)


def _paths(src: dict[str, Any]) -> Rows:
    """The ranked flows, one column per step (a flow of fewer steps ended there)."""
    rows = []
    for flow in (src.get("paths") or {}).get("flows") or []:
        steps = flow.get("steps") or []
        row: dict[str, Any] = {f"step_{i + 1}": (steps[i].get("path") if i < len(steps) else None)
                               for i in range(PATH_STEPS)}
        row.update(visits=flow.get("visits", 0), share=flow.get("share"),
                   then="left the site" if flow.get("ended") else "went on",
                   flow=[step.get("path") for step in steps], events=[step.get("event") for step in steps])
        rows.append(row)
    return rows


def _path_steps(src: dict[str, Any]) -> Rows:
    """Visits reaching each step of the paths, and how many left there."""
    return [dict(step) for step in (src.get("paths") or {}).get("steps") or []]


def title_of(slug: Any) -> str:
    return str(slug or "").replace("-", " ")


def _tutorial_views(src: dict[str, Any]) -> Rows:
    return [{"tutorial": title_of(r["key"]), "foss": r.get("foss"), "language": r.get("language"), "views": r["count"]}
            for r in src["daily"]["top"].get("tutorial", [])]


def _tutorials(src: dict[str, Any]) -> Rows:
    return list(src["tutorials"]["tutorials"])


def _courses(src: dict[str, Any]) -> Rows:
    rows = []
    for course in src["tutorials"]["courses"]:
        dist = course.get("distribution") or {}
        rows.append({**{k: v for k, v in course.items() if k != "distribution"},
                     **{f"pct_{bucket.replace('-', '_')}": dist.get(bucket, 0) for bucket in rollups.COURSE_BUCKETS}})
    return rows


def _rewatched(src: dict[str, Any]) -> Rows:
    rows = (src["tutorials"].get("summary") or {}).get("most_rewatched") or []
    return [{**row, "course": f"{row.get('foss')} ({row.get('language')})"} for row in rows]


VIEWS, SHARE = Column("count", "Views", "int"), Column("share", "Share", "pct")
TABLES: dict[str, Table] = {t.name: t for t in (
    Table("traffic", "Traffic by day", (
        Column("day", "Day"), Column("page_views", "Page views", "int"), Column("unique_visitors", "Visitors", "int"),
        Column("visits", "Visits", "int"), Column("bounce_rate", "Bounce rate", "pct"),
        Column("pages_per_visit", "Pages / visit", "float"), Column("visit_duration_avg", "Visit duration", "seconds"),
        Column("new_visitors", "New visitors", "int"), Column("logged_in_users", "Logged-in users", "int"),
        Column("bot_views", "Bot views", "int"), Column("tutorial_views", "Tutorial views", "int"),
        Column("exit_clicks", "Exit clicks", "int"), Column("duration_avg", "Engaged / page", "seconds")), _traffic),
    Table("entry_pages", "Entry pages", (
        Column("path", "Page"), Column("visits", "Visits", "int"), Column("share", "Share", "pct"),
        Column("bounce_rate", "Bounce rate", "pct")), _rows("entry_pages")),
    Table("exit_pages", "Exit pages", (
        Column("path", "Page"), Column("visits", "Exits", "int"), Column("share", "Share", "pct")),
          _rows("exit_pages")),
    Table("paths", "User paths", (
        *(Column(f"step_{i}", "Entry page" if i == 1 else f"Step {i}") for i in range(1, PATH_STEPS + 1)),
        Column("visits", "Visits", "int"), Column("share", "Share", "pct"), Column("then", "Then")), _paths),
    Table("path_steps", "Path drop-off", (
        Column("step", "Step", "int"), Column("visits", "Visits", "int"), Column("dropped", "Left here", "int"),
        Column("drop_rate", "Drop-off", "pct")), _path_steps),
    Table("campaigns", "Campaigns", (
        Column("source", "Source"), Column("medium", "Medium"), Column("campaign", "Campaign"),
        Column("visits", "Visits", "int"), Column("page_views", "Page views", "int"),
        Column("bounce_rate", "Bounce rate", "pct"), Column("pages_per_visit", "Pages / visit", "float")),
          _rows("campaigns")),
    Table("pages", "Top pages", (Column("path", "Page"), VIEWS, SHARE), _dim("path", key="path")),
    Table("events", "Events", (Column("event", "Event"), VIEWS, SHARE), _dim("event", key="event")),
    Table("countries", "Countries", (Column("country", "Country", "country"), VIEWS, SHARE),
          _dim("country", key="country")),
    Table("regions", "Regions", (Column("region", "Region"), Column("country", "Country", "country"), VIEWS, SHARE),
          _dim("region", key="region")),
    Table("cities", "Cities", (Column("city", "City"), Column("region", "Region"),
                               Column("country", "Country", "country"), VIEWS, SHARE), _dim("city", key="city")),
    Table("browsers", "Browsers", (Column("browser", "Browser"), VIEWS, SHARE), _dim("browser", key="browser")),
    Table("os", "Operating systems", (Column("os", "OS"), VIEWS, SHARE), _dim("os", key="os")),
    Table("devices", "Devices", (Column("device", "Device"), VIEWS, SHARE), _dim("device", key="device")),
    Table("device_types", "Device types", (Column("device_type", "Type"), VIEWS, SHARE),
          _dim("device_type", key="device_type")),
    Table("referrers", "Referrers", (Column("referrer", "Referrer"), VIEWS, SHARE), _referrers),
    Table("exit_links", "Exit links", (Column("url", "Link"), Column("count", "Clicks", "int")),
          _dim("exit_link", key="url")),
    Table("bots", "Bots", (Column("bot", "Bot"), VIEWS), _dim("bot", key="bot")),
    # docs/offline.md: who recorded the page views, and who watched from an offline package.
    Table("sources", "Recorded by", (Column("source", "Source"), VIEWS, SHARE), _dim("source", key="source")),
    Table("offline_learners", "Offline learners", (Column("learner", "Learner"), VIEWS),
          _dim("offline_learner", key="learner")),
    # docs/security.md: page views recorded without IP, user or visitor id because the browser asked.
    Table("dnt", "Do Not Track / GPC", (Column("signal", "Browser signal"), VIEWS, SHARE), _dnt),
    Table("durations", "Visit duration", (Column("bucket", "Duration"), Column("count", "Visits", "int")), _durations),
    Table("tutorial_views", "Tutorial popularity", (
        Column("tutorial", "Tutorial"), Column("foss", "Course"), Column("language", "Language"),
        Column("views", "Views", "int")), _tutorial_views),
    Table("tutorials", "Tutorial engagement (all time)", (
        Column("tutorial", "Tutorial"), Column("foss", "Course"), Column("language", "Language"),
        Column("learners", "Learners", "int"), Column("completions", "Completed", "int"),
        Column("completion_rate", "Completion", "pct"), Column("avg_minutes_watched", "Avg. minutes", "float"),
        Column("total_visits", "Visits", "int"), Column("rewatchers", "Rewatchers", "int")), _tutorials),
    Table("courses", "Course completion (all time)", (
        Column("foss", "Course"), Column("language", "Language"), Column("tutorials_in_course", "Tutorials", "int"),
        Column("learners", "Learners", "int"), Column("pct_0_25", "0-25 %", "int"),
        Column("pct_25_50", "25-50 %", "int"), Column("pct_50_75", "50-75 %", "int"),
        Column("pct_75_100", "75-100 %", "int"), Column("completed_course", "Finished", "int")), _courses),
    Table("rewatched", "Most rewatched tutorials (all time)", (
        Column("tutorial", "Tutorial"), Column("course", "Course"), Column("rewatchers", "Rewatchers", "int"),
        Column("total_visits", "Visits", "int")), _rewatched),
)}
