"""Analytics dashboard (staff only), from the rollups only.

    dashboard/                          the page (date-range picker, charts, tables, health)
    dashboard/data.json                 the same figures as JSON (?start=&end=&limit=)
    dashboard/export/<table>.<csv|json> one table, whole (up to the rollups' top-N per day)

Every figure comes from the ``stats_*`` collections through
:func:`pipeline.rollups.read_daily` and :func:`pipeline.rollups.read_tutorials`;
nothing here reads ``website_logs``, so a page costs the same with a thousand or
a hundred million events stored. Results are cached (Django's cache) per range
until the next rollup run moves the watermark.

Anonymous users are sent to the login page and non-staff users get 403, both
before MongoDB is touched. Pipeline health (queues, spool, dead letters, lag) is
fetched by the page from the ``health/`` endpoint, which monitors poll as well.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET
from pymongo.errors import PyMongoError

from django_hook.conf import eventlog_settings
from django_hook.request_info import is_site_host
from pipeline import rollups
from pipeline.store import process_client

DEFAULT_DAYS = 30
MAX_DAYS = 731  # two years: read_daily lists every day of the range
PAGE_ROWS = 10  # rows of each table on the page (exports have them all)
ALL_ROWS = rollups.TOP_N  # the rollups keep the top N keys per day and dimension
CACHE_SECONDS = 300
PRESETS = (("7d", 7), ("30d", 30), ("90d", 90), ("1y", 365))


# ---------------------------------------------------------------- access and storage


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous -> login page; logged in but not staff -> 403. Checked before any MongoDB access."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.eventlog_skip = True  # looking at analytics is not site traffic
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("the eventlog dashboard is for staff")
        return view(request, *args, **kwargs)

    return wrapped


def _db() -> Any:
    """The eventlog database through this process's client."""
    s = eventlog_settings()
    return process_client(s.mongo_url)[s.mongo_db]


# ---------------------------------------------------------------- date range


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def query(self, **extra: Any) -> str:
        return urlencode({"start": self.start.isoformat(), "end": self.end.isoformat(), **extra})


def default_range(today: date | None = None, days: int = DEFAULT_DAYS) -> DateRange:
    today = today or datetime.now(UTC).date()
    return DateRange(today - timedelta(days=days - 1), today)


def parse_range(params: Any, today: date | None = None) -> DateRange:
    """The range of ``?start=YYYY-MM-DD&end=YYYY-MM-DD`` (UTC days, inclusive); ValueError if invalid."""
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
    return DateRange(start, end)


# ---------------------------------------------------------------- tables


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
    build: Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]  # (daily, tutorials) -> rows


def _dim(name: str, **rename: str) -> Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]:
    """Rows of a read_daily top list: its key renamed, extras kept, share of human page views."""

    def build(daily: dict[str, Any], _tutorials: dict[str, Any]) -> list[dict[str, Any]]:
        total = daily["totals"]["page_views"] or 0
        rows = []
        for row in daily["top"].get(name, []):
            out = {rename.get(k, k): v for k, v in row.items()}
            out["share"] = row["count"] / total if total and name not in ("bot", "exit_link") else None
            rows.append(out)
        return rows

    return build


INTERNAL_REFERRER = "(this site)"


def _referrers(daily: dict[str, Any], tutorials: dict[str, Any]) -> list[dict[str, Any]]:
    """Referrer hosts, with navigation inside the site folded into one row (as analytics tools show it)."""
    rows: list[dict[str, Any]] = []
    internal: dict[str, Any] = {"referrer": INTERNAL_REFERRER, "count": 0, "share": None}
    for row in _dim("referrer", key="referrer")(daily, tutorials):
        if is_site_host(str(row["referrer"]), allow_wildcard=False):
            internal["count"] += row["count"]
            internal["share"] = (internal["share"] or 0) + (row["share"] or 0)
        else:
            rows.append(row)
    if internal["count"]:
        rows.append(internal)
    return sorted(rows, key=lambda r: -r["count"])


def _traffic(daily: dict[str, Any], _t: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("day", "page_views", "unique_visitors", "new_visitors", "logged_in_users", "bot_views",
            "tutorial_views", "exit_clicks", "duration_avg")
    return [{k: d.get(k) for k in keys} for d in daily["days"]]


def _durations(daily: dict[str, Any], _t: dict[str, Any]) -> list[dict[str, Any]]:
    return list(daily["duration"])


def _tutorial_views(daily: dict[str, Any], _t: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"tutorial": _title(r["key"]), "foss": r.get("foss"), "language": r.get("language"), "views": r["count"]}
            for r in daily["top"].get("tutorial", [])]


def _tutorials(_d: dict[str, Any], tutorials: dict[str, Any]) -> list[dict[str, Any]]:
    return list(tutorials["tutorials"])


def _courses(_d: dict[str, Any], tutorials: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for course in tutorials["courses"]:
        dist = course.get("distribution") or {}
        rows.append({**{k: v for k, v in course.items() if k != "distribution"},
                     **{f"pct_{bucket.replace('-', '_')}": dist.get(bucket, 0) for bucket in rollups.COURSE_BUCKETS}})
    return rows


def _rewatched(_d: dict[str, Any], tutorials: dict[str, Any]) -> list[dict[str, Any]]:
    rows = (tutorials.get("summary") or {}).get("most_rewatched") or []
    return [{**row, "course": f"{row.get('foss')} ({row.get('language')})"} for row in rows]


VIEWS, SHARE = Column("count", "Views", "int"), Column("share", "Share", "pct")
TABLES: dict[str, Table] = {t.name: t for t in (
    Table("traffic", "Traffic by day", (
        Column("day", "Day"), Column("page_views", "Page views", "int"), Column("unique_visitors", "Visitors", "int"),
        Column("new_visitors", "New visitors", "int"), Column("logged_in_users", "Logged-in users", "int"),
        Column("bot_views", "Bot views", "int"), Column("tutorial_views", "Tutorial views", "int"),
        Column("exit_clicks", "Exit clicks", "int"), Column("duration_avg", "Avg. visit", "seconds")), _traffic),
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


def _title(slug: Any) -> str:
    return str(slug or "").replace("-", " ")


# ---------------------------------------------------------------- the figures


def _watermark_stamp(db: Any) -> tuple[str, datetime | None]:
    """Identifies the rollup state (changes on every run) and when rollups last ran."""
    marks = list(db[rollups.STATS_WATERMARKS].find(
        {"_id": {"$in": [rollups.WEBSITE_LOGS, rollups.EXIT_LINK_LOGS]}}, {"updated_at": 1}))
    times = [m["updated_at"] for m in marks if isinstance(m.get("updated_at"), datetime)]
    latest = max(times) if times else None
    return (latest.isoformat() if latest else "none"), latest


def _course_order(foss: Any, language: Any) -> list[str] | None:
    """Tutorial titles of a course in the site's order (EVENTLOG_PROGRESS_CATALOGUE), if configured."""
    path = eventlog_settings().progress_catalogue
    if not path or not isinstance(foss, str) or not isinstance(language, str):
        return None
    try:
        course = import_string(path)(foss, language)
    except Exception:  # noqa: BLE001 - a broken catalogue must not break the dashboard
        return None
    return [entry["title"] if isinstance(entry, dict) else str(entry) for entry in course or []] or None


def funnels(tutorials: dict[str, Any]) -> list[dict[str, Any]]:
    """Per course: its tutorials in course order with learners who started and completed each."""
    by_course: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for t in tutorials["tutorials"]:
        by_course.setdefault((t.get("foss"), t.get("language")), []).append(t)
    result = []
    for course in tutorials["courses"]:
        foss, language = course.get("foss"), course.get("language")
        entries = {t.get("tutorial"): t for t in by_course.get((foss, language), [])}
        order = _course_order(foss, language)
        titles = order if order else sorted(entries, key=lambda k: -(entries[k].get("learners") or 0))
        steps = [{"tutorial": title, "learners": (entries.get(title) or {}).get("learners", 0),
                  "completions": (entries.get(title) or {}).get("completions", 0),
                  "rewatchers": (entries.get(title) or {}).get("rewatchers", 0)} for title in titles]
        result.append({"foss": foss, "language": language, "label": f"{foss} ({language})",
                       "learners": course.get("learners", 0), "steps": steps})
    result.sort(key=lambda f: -(f["learners"] or 0))
    return result


def compute(db: Any, rng: DateRange, limit: int = ALL_ROWS) -> dict[str, Any]:
    """Every figure of the dashboard for a range, from the stats_* collections."""
    daily = rollups.read_daily(db, rng.start, rng.end, limit=limit)
    tutorials = rollups.read_tutorials(db)
    totals = daily["totals"]
    views = totals["page_views"] or 0
    kpis = {
        "page_views": views,
        "avg_daily_visitors": round(totals["visitor_days"] / rng.days, 1),
        "new_visitors": sum(d.get("new_visitors") or 0 for d in daily["days"]),
        "logged_in_views": totals["logged_in_views"],
        "tutorial_views": totals["tutorial_views"],
        "duration_avg": totals["duration_avg"],
        "bot_share": totals["bot_views"] / totals["all_views"] if totals["all_views"] else None,
        "exit_clicks": totals["exit_clicks"],
        "learners": (tutorials.get("summary") or {}).get("learners", 0),
        "completion_rate": (tutorials.get("summary") or {}).get("completion_rate"),
    }
    tables = {name: table.build(daily, tutorials) for name, table in TABLES.items()}
    return {"start": daily["start"], "end": daily["end"], "days": rng.days, "kpis": kpis, "totals": totals,
            "tables": tables, "funnels": funnels(tutorials), "tutorial_summary": tutorials.get("summary"),
            "tutorials_computed_at": tutorials.get("computed_at")}


def dashboard_data(rng: DateRange) -> dict[str, Any]:
    """compute() for the range, cached until the next rollup run (or CACHE_SECONDS)."""
    db = _db()
    stamp, updated_at = _watermark_stamp(db)
    s = eventlog_settings()
    key = f"eventlog:dashboard:{s.mongo_url}:{s.mongo_db}:{rng.start}:{rng.end}:{stamp}"
    data = cache.get(key)
    if data is None:
        data = compute(db, rng)
        cache.set(key, data, CACHE_SECONDS)
    return {**data, "rollups_updated_at": updated_at}


# ---------------------------------------------------------------- formatting


def _cell(value: Any, kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """One table cell for the template: display text, CSS class, and a flag for countries."""
    if value is None or value == "":
        if kind in ("text", "country"):
            return {"text": "(unknown)", "cls": "muted"}
        return {"text": "—", "cls": "num muted"}
    if kind == "int":
        return {"text": f"{int(value):,}", "cls": "num"}
    if kind == "pct":
        return {"text": f"{100 * value:.1f} %", "cls": "num"}
    if kind == "float":
        return {"text": f"{value:,.1f}", "cls": "num"}
    if kind == "seconds":
        return {"text": format_seconds(value), "cls": "num"}
    if kind == "country":
        return {"text": str(value), "cls": "", "flag": row.get("country_code")}
    return {"text": str(value), "cls": ""}


def format_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value < 60:
        return f"{value:.0f} s"
    return f"{int(value // 60)}m {int(value % 60):02d}s"


def table_view(name: str, rows: list[dict[str, Any]], rng: DateRange, limit: int | None = PAGE_ROWS) -> dict[str, Any]:
    table = TABLES[name]
    shown = rows if limit is None else rows[:limit]
    return {
        "name": name, "title": table.title, "columns": table.columns, "total_rows": len(rows),
        "rows": [[_cell(row.get(c.key), c.kind, row) for c in table.columns] for row in shown],
        "csv": reverse("eventlog:dashboard-export", args=[name, "csv"]) + "?" + rng.query(),
        "json": reverse("eventlog:dashboard-export", args=[name, "json"]) + "?" + rng.query(),
    }


# ---------------------------------------------------------------- views


def _count(value: Any) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _percent(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


# (kpi key, label, formatter, tooltip): the headline figures, in display order.
KPI_CARDS: tuple[tuple[str, str, Callable[[Any], str], str], ...] = (
    ("page_views", "Page views", _count, "Page views by people (bots excluded)"),
    ("avg_daily_visitors", "Visitors / day", _count, "Distinct visitors per day, averaged over the range"),
    ("new_visitors", "New visitors", _count, "Visitors seen for the first time"),
    ("tutorial_views", "Tutorial views", _count, "Views of tutorial watch pages"),
    ("logged_in_views", "Logged-in views", _count, "Page views by logged-in users"),
    ("duration_avg", "Avg. visit", format_seconds, "Engaged time per page view (reported by the tracker)"),
    ("bot_share", "Bot traffic", _percent, "Share of all page views made by bots"),
    ("exit_clicks", "Exit clicks", _count, "Clicks on links to other sites"),
)


def kpi_cards(kpis: dict[str, Any]) -> list[dict[str, str]]:
    """The headline figures, formatted (the template only lays them out)."""
    return [{"key": key, "label": label, "text": fmt(kpis[key]), "help": help_text}
            for key, label, fmt, help_text in KPI_CARDS]


def _presets(today: date) -> list[dict[str, str]]:
    return [{"label": label, "query": default_range(today, days).query()} for label, days in PRESETS]


@require_GET
@staff_only
def dashboard(request: HttpRequest) -> HttpResponse:
    today = datetime.now(UTC).date()
    error = None
    try:
        rng = parse_range(request.GET, today)
    except ValueError as exc:
        error, rng = str(exc), default_range(today)
    context: dict[str, Any] = {"range": rng, "error": error, "presets": _presets(today), "today": today,
                               "health_url": reverse("eventlog:health"),
                               "data_url": reverse("eventlog:dashboard-data") + "?" + rng.query()}
    try:
        data = dashboard_data(rng)
    except PyMongoError as exc:
        context["store_error"] = f"The analytics store does not answer ({exc.__class__.__name__})."
        return render(request, "eventlog/dashboard.html", context, status=503)
    tables = {name: table_view(name, rows, rng, None if name == "traffic" else PAGE_ROWS)
              for name, rows in data["tables"].items()}
    context.update(data=data, kpi_cards=kpi_cards(data["kpis"]), top_n=ALL_ROWS, tables=tables,
                   chart_data=_chart_payload(data))
    return render(request, "eventlog/dashboard.html", context)


def _chart_payload(data: dict[str, Any]) -> dict[str, Any]:
    """What dashboard.js draws (the page's tables are rendered on the server)."""
    keep = ("traffic", "pages", "events", "countries", "browsers", "os", "device_types", "referrers", "exit_links",
            "durations", "tutorial_views", "courses", "rewatched")
    tables = {name: data["tables"][name] for name in keep}
    for name in ("pages", "browsers", "os", "referrers", "exit_links", "tutorial_views", "rewatched"):
        tables[name] = tables[name][:PAGE_ROWS]
    return {"start": data["start"], "end": data["end"], "tables": tables, "funnels": data["funnels"]}


def _json(payload: dict[str, Any]) -> JsonResponse:
    return JsonResponse(payload, encoder=DjangoJSONEncoder, json_dumps_params={"ensure_ascii": False})


@require_GET
@staff_only
def data(request: HttpRequest) -> JsonResponse:
    """The dashboard's figures as JSON, for scripts and the benchmark."""
    try:
        rng = parse_range(request.GET)
        limit = int(request.GET.get("limit", PAGE_ROWS * 2))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    limit = max(1, min(limit, ALL_ROWS))
    try:
        figures = dashboard_data(rng)
    except PyMongoError as exc:
        return JsonResponse({"error": f"store unreachable: {exc.__class__.__name__}"}, status=503)
    tables = {name: rows[:limit] for name, rows in figures["tables"].items()}
    tables["traffic"] = figures["tables"]["traffic"]  # one row per day: never cut
    return _json({**figures, "tables": tables})


@require_GET
@staff_only
def export(request: HttpRequest, table: str, fmt: str) -> HttpResponse:
    """One table of the dashboard, every row, as CSV or JSON."""
    if table not in TABLES or fmt not in ("csv", "json"):
        raise Http404("no such table or format")
    try:
        rng = parse_range(request.GET)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    try:
        rows = dashboard_data(rng)["tables"][table]
    except PyMongoError as exc:
        return JsonResponse({"error": f"store unreachable: {exc.__class__.__name__}"}, status=503)
    spec = TABLES[table]
    filename = f"eventlog-{table}-{rng.start}-{rng.end}.{fmt}"
    if fmt == "json":
        payload = {"table": table, "title": spec.title, "start": rng.start, "end": rng.end,
                   "columns": [c.key for c in spec.columns], "rows": rows}
        response: HttpResponse = _json(payload)
    else:
        response = HttpResponse(to_csv(spec, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: referrers and exit links are visitor-controlled text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(spec: Table, rows: list[dict[str, Any]]) -> str:
    keys = [c.key for c in spec.columns]
    extras = sorted({k for row in rows for k in row} - set(keys))  # e.g. country_code next to country
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(keys + extras)
    for row in rows:
        writer.writerow([_csv_safe(row.get(k)) for k in keys + extras])
    return out.getvalue()
