"""Figures as the page shows them: table cells, headline cards, durations.

The template only lays out what these functions produce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import reverse

from django_hook.dashboard.ranges import DateRange
from django_hook.dashboard.tables import TABLES

PAGE_ROWS = 10  # rows of each table on the page (exports have them all)


def format_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value < 60:
        return f"{value:.0f} s"
    return f"{int(value // 60)}m {int(value % 60):02d}s"


def cell(value: Any, kind: str, row: dict[str, Any]) -> dict[str, Any]:
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


def table_view(name: str, rows: list[dict[str, Any]], rng: DateRange, limit: int | None = PAGE_ROWS,
               query: dict[str, str] | None = None) -> dict[str, Any]:
    """A table as the template draws it: formatted cells of the first ``limit`` rows, export links
    (``query``: more parameters for them, e.g. the paths filter)."""
    table = TABLES[name]
    shown = rows if limit is None else rows[:limit]
    params = rng.query(**{k: v for k, v in (query or {}).items() if v})
    return {
        "name": name, "title": table.title, "columns": table.columns, "total_rows": len(rows),
        "rows": [[cell(row.get(c.key), c.kind, row) for c in table.columns] for row in shown],
        "items": [{"row": row, "cells": [cell(row.get(c.key), c.kind, row) for c in table.columns]} for row in shown],
        "csv": reverse("eventlog:dashboard-export", args=[name, "csv"]) + "?" + params,
        "json": reverse("eventlog:dashboard-export", args=[name, "json"]) + "?" + params,
    }


def count(value: Any) -> str:
    return "–" if value is None else f"{value:,.0f}"


def percent(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def decimal(value: Any) -> str:
    return "–" if value is None else f"{value:,.1f}"


# (kpi key, label, formatter, tooltip): the headline figures, in display order.
KPI_CARDS: tuple[tuple[str, str, Callable[[Any], str], str], ...] = (
    ("page_views", "Page views", count, "Page views by people (bots excluded)"),
    ("unique_visitors", "Unique visitors", count, "Distinct visitors over the whole range (each counted once)"),
    ("visits", "Visits", count, "Visits (sessions): a visitor's page views without a long pause between them"),
    ("bounce_rate", "Bounce rate", percent, "Share of visits that saw one page only"),
    ("pages_per_visit", "Pages / visit", decimal, "Page views per visit"),
    ("visit_duration_avg", "Visit duration", format_seconds, "Mean duration of a visit"),
    ("new_visitors", "New visitors", count, "Visitors seen for the first time in the range"),
    ("tutorial_views", "Tutorial views", count, "Views of tutorial watch pages"),
    ("logged_in_views", "Logged-in views", count, "Page views by logged-in users"),
    ("duration_avg", "Engaged / page", format_seconds, "Engaged time per page view (reported by the tracker)"),
    ("bot_share", "Bot traffic", percent, "Share of all page views made by bots"),
    ("exit_clicks", "Exit clicks", count, "Clicks on links to other sites"),
)


def kpi_cards(kpis: dict[str, Any]) -> list[dict[str, str]]:
    """The headline figures, formatted; a figure the read API did not give is left out."""
    return [{"key": key, "label": label, "text": fmt(kpis[key]), "help": help_text}
            for key, label, fmt, help_text in KPI_CARDS if key in kpis]
