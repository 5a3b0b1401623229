"""The dashboard's page and its JSON endpoints: data.json (the range's figures) and
live.json (the live view, polled by the page every few seconds)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from pymongo.errors import PyMongoError

from django_hook.conf import eventlog_settings
from django_hook.dashboard import data
from django_hook.dashboard.access import staff_only
from django_hook.dashboard.formatting import PAGE_ROWS, kpi_cards, table_view
from django_hook.dashboard.ranges import default_range, parse_range, path_filter, presets
from django_hook.responses import json_error, json_response
from pipeline import live

LIVE_POLL_SECONDS = 5
LIVE_CACHE_SECONDS = 2  # several staff pages polling at once share one query
# Tables the charts draw, and how many of their rows they draw (None: all).
CHART_TABLES: dict[str, int | None] = {
    "traffic": None, "pages": PAGE_ROWS, "events": None, "countries": None, "browsers": PAGE_ROWS,
    "os": PAGE_ROWS, "device_types": None, "referrers": PAGE_ROWS, "exit_links": PAGE_ROWS, "durations": None,
    "tutorial_views": PAGE_ROWS, "courses": None, "rewatched": PAGE_ROWS, "path_steps": None,
}
UNCUT_TABLES = ("traffic", "path_steps")  # every row on the page and in data.json (days; the 4 steps)


def chart_payload(figures: dict[str, Any]) -> dict[str, Any]:
    """What dashboard.js draws (the page's tables are rendered on the server)."""
    tables = {name: figures["tables"][name] if rows is None else figures["tables"][name][:rows]
              for name, rows in CHART_TABLES.items() if name in figures["tables"]}
    return {"start": figures["start"], "end": figures["end"], "tables": tables, "funnels": figures["funnels"]}


@require_GET
@staff_only
def page(request: HttpRequest) -> HttpResponse:
    today = datetime.now(UTC).date()
    problem = None
    try:
        rng = parse_range(request.GET, today)
    except ValueError as exc:
        problem, rng = str(exc), default_range(today)
    context: dict[str, Any] = {
        "range": rng, "error": problem, "presets": presets(today), "today": today,
        "health_url": reverse("eventlog:health"), "live_url": reverse("eventlog:dashboard-live"),
        "live_seconds": LIVE_POLL_SECONDS,
        "data_url": reverse("eventlog:dashboard-data") + "?" + rng.query(),
    }
    try:
        figures = data.dashboard_data(rng)
    except PyMongoError as exc:
        context["store_error"] = f"The analytics store does not answer ({exc.__class__.__name__})."
        return render(request, "eventlog/dashboard.html", context, status=503)
    tables = {name: table_view(name, rows, rng, None if name in UNCUT_TABLES else PAGE_ROWS)
              for name, rows in figures["tables"].items()}
    charts = chart_payload(figures)
    chosen = path_filter(request.GET)
    path_figures = figures["paths"]
    if any(chosen.values()):
        try:
            filtered = data.filtered_paths(rng, chosen["entry"], chosen["event"])
        except PyMongoError as exc:
            context["store_error"] = f"The analytics store does not answer ({exc.__class__.__name__})."
            return render(request, "eventlog/dashboard.html", context, status=503)
        tables["paths"] = table_view("paths", filtered["rows"], rng, PAGE_ROWS, chosen)
        path_figures = filtered["figures"]
        tables["path_steps"] = table_view("path_steps", path_figures["steps"], rng, None)
        charts["tables"]["path_steps"] = path_figures["steps"]
    context.update(data=figures, kpi_cards=kpi_cards(figures["kpis"]), top_n=data.ALL_ROWS, tables=tables,
                   chart_data=charts, path_filter=chosen, path_figures=path_figures,
                   path_options=path_options(figures, chosen))
    return render(request, "eventlog/dashboard.html", context)


def path_options(figures: dict[str, Any], chosen: dict[str, str]) -> dict[str, list[str]]:
    """The choices of the paths filter: the range's entry pages and event names (and what is chosen)."""
    entries = [str(r.get("path")) for r in figures["tables"].get("entry_pages", [])[:data.PATH_ROWS] if r.get("path")]
    events = sorted(str(r.get("event")) for r in figures["tables"].get("events", []) if r.get("event"))
    for name, options in (("entry", entries), ("event", events)):
        if chosen[name] and chosen[name] not in options:
            options.insert(0, chosen[name])
    return {"entry": entries, "event": events}


@require_GET
@staff_only
def data_json(request: HttpRequest) -> JsonResponse:
    """The dashboard's figures as JSON (?start=&end=&limit=), for scripts and the benchmark."""
    try:
        rng = parse_range(request.GET)
        limit = int(request.GET.get("limit", PAGE_ROWS * 2))
    except ValueError as exc:
        return json_error(400, str(exc))
    limit = max(1, min(limit, data.ALL_ROWS))
    try:
        figures = data.dashboard_data(rng)
    except PyMongoError as exc:
        return json_error(503, f"store unreachable: {exc.__class__.__name__}")
    tables = {name: rows if name in UNCUT_TABLES else rows[:limit] for name, rows in figures["tables"].items()}
    return json_response({**figures, "tables": tables})


@require_GET
@staff_only
def live_json(request: HttpRequest) -> JsonResponse:
    """Visitors and page views of the last 5 and 30 minutes and the pages they are on."""
    try:
        s = eventlog_settings()
        key = f"eventlog:live:{s.mongo_url}:{s.mongo_db}"
        figures = cache.get(key)
        if figures is None:
            figures = live.live_figures(data._db())
            cache.set(key, figures, LIVE_CACHE_SECONDS)
    except PyMongoError as exc:
        return json_error(503, f"store unreachable: {exc.__class__.__name__}")
    response = json_response(figures)
    response["Cache-Control"] = "no-store"  # it is the present; a cached answer is wrong
    return response
