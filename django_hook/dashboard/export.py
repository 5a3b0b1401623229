"""dashboard/export/<table>.<csv|json>: one table of the dashboard, every row."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from pymongo.errors import PyMongoError

from django_hook.dashboard import data
from django_hook.dashboard.access import staff_only
from django_hook.dashboard.ranges import parse_range, path_filter
from django_hook.dashboard.tables import TABLES, Table
from django_hook.responses import json_error, json_response


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: referrers, paths and campaigns are visitor-controlled text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(spec: Table, rows: list[dict[str, Any]]) -> str:
    """The rows as CSV: the table's columns first, then any extra keys (e.g. country_code)."""
    keys = [c.key for c in spec.columns]
    extras = sorted({k for row in rows for k in row} - set(keys))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(keys + extras)
    for row in rows:
        writer.writerow([_csv_safe(_flat(row.get(k))) for k in keys + extras])
    return out.getvalue()


def _flat(value: Any) -> Any:
    """A list cell (a path's steps) as one CSV cell."""
    if isinstance(value, list | tuple):
        return " > ".join(str(v) for v in value)
    return value


@require_GET
@staff_only
def export(request: HttpRequest, table: str, fmt: str) -> HttpResponse:
    """One table of the dashboard, every row, as CSV or JSON."""
    if table not in TABLES or fmt not in ("csv", "json"):
        raise Http404("no such table or format")
    try:
        rng = parse_range(request.GET)
    except ValueError as exc:
        return json_error(400, str(exc))
    chosen = path_filter(request.GET)
    try:
        if table == "paths" and any(chosen.values()):
            rows = data.filtered_paths(rng, chosen["entry"], chosen["event"])["rows"]
        else:
            rows = data.dashboard_data(rng)["tables"][table]
    except PyMongoError as exc:
        return json_error(503, f"store unreachable: {exc.__class__.__name__}")
    spec = TABLES[table]
    filename = f"eventlog-{table}-{rng.start}-{rng.end}.{fmt}"
    if fmt == "json":
        payload = {"table": table, "title": spec.title, "start": rng.start, "end": rng.end,
                   "columns": [c.key for c in spec.columns], "rows": rows}
        response: HttpResponse = json_response(payload)
    else:
        response = HttpResponse(to_csv(spec, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
