"""dashboard/: who may see it, date ranges, exports' format, a store that is down.

No MongoDB here (tests/django_hook has none): the permission checks must answer
before the dashboard touches the store, which these tests make impossible.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from pymongo.errors import PyMongoError

from django_hook.dashboard import data, export, formatting, ranges

PAGE, DATA = "/eventlog/dashboard/", "/eventlog/dashboard/data.json"
EXPORT = "/eventlog/dashboard/export/countries.csv"
LIVE = "/eventlog/dashboard/live.json"
URLS = (PAGE, DATA, EXPORT, "/eventlog/dashboard/export/traffic.json", LIVE)


def user(name: str, staff: bool = False) -> Any:
    account, _ = get_user_model().objects.get_or_create(username=name, defaults={"is_staff": staff})
    return account


@pytest.fixture
def no_store(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any MongoDB access fails the test."""
    touched: list[str] = []

    def forbidden() -> None:
        touched.append("db")
        raise AssertionError("the dashboard touched MongoDB")

    monkeypatch.setattr(data, "_db", forbidden)
    return touched


@pytest.fixture
def staff_client() -> Client:
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user("dash-admin", staff=True))
    return client


@pytest.mark.parametrize("url", URLS)
def test_anonymous_users_are_sent_to_login(url: str, no_store: list[str]) -> None:
    answer = Client(HTTP_HOST="127.0.0.1").get(url + "?start=2026-01-01&end=2026-01-31")
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/?next=/eventlog/dashboard/")
    assert "2026-01-31" in answer["Location"]  # back to the same range after logging in
    assert no_store == []


@pytest.mark.parametrize("url", URLS)
def test_non_staff_users_get_403(url: str, no_store: list[str]) -> None:
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user("dash-learner"))
    assert client.get(url).status_code == 403
    assert no_store == []


def test_only_get_is_allowed(staff_client: Client, no_store: list[str]) -> None:
    assert staff_client.post(PAGE).status_code == 405
    assert no_store == []


@pytest.mark.parametrize("path", ["/eventlog/dashboard/export/nope.csv", "/eventlog/dashboard/export/pages.xlsx"])
def test_unknown_tables_and_formats_are_404(staff_client: Client, no_store: list[str], path: str) -> None:
    assert staff_client.get(path).status_code == 404


@pytest.mark.parametrize("query", ["start=2026-02-10&end=2026-02-01", "start=yesterday",
                                   "start=2020-01-01&end=2026-01-01"])
def test_invalid_ranges_are_400_for_data_and_exports(staff_client: Client, no_store: list[str], query: str) -> None:
    for url in (DATA, EXPORT):
        answer = staff_client.get(f"{url}?{query}")
        assert answer.status_code == 400
        assert "error" in answer.json()


def test_range_parsing() -> None:
    today = date(2026, 3, 31)
    assert ranges.parse_range({}, today) == ranges.DateRange(date(2026, 3, 2), today)
    assert ranges.parse_range({"start": "2026-03-01", "end": "2026-03-01"}, today).days == 1
    assert ranges.parse_range({"end": "2026-02-28"}, today).start == date(2026, 1, 30)
    with pytest.raises(ValueError, match="after"):
        ranges.parse_range({"start": "2026-03-02", "end": "2026-03-01"}, today)
    with pytest.raises(ValueError, match="at most"):
        ranges.parse_range({"start": "2020-01-01", "end": "2026-03-01"}, today)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ranges.parse_range({"start": "03/01/2026"}, today)


def test_csv_cells_cannot_carry_spreadsheet_formulas() -> None:
    rows = [{"url": '=HYPERLINK("http://evil")', "count": 3}, {"url": "https://ok.example/", "count": -1}]
    parsed = list(csv.reader(io.StringIO(export.to_csv(export.TABLES["exit_links"], rows))))
    assert parsed == [["url", "count"], ["'=HYPERLINK(\"http://evil\")", "3"], ["https://ok.example/", "-1"]]


def test_cells_and_durations_are_formatted() -> None:
    assert formatting.format_seconds(None) == "—"
    assert formatting.format_seconds(42.4) == "42 s"
    assert formatting.format_seconds(125) == "2m 05s"
    assert formatting.cell(None, "country", {})["text"] == "(unknown)"
    assert formatting.cell("India", "country", {"country_code": "IN"})["flag"] == "IN"
    assert formatting.cell(1234567, "int", {})["text"] == "1,234,567"
    assert formatting.cell(0.1234, "pct", {})["text"] == "12.3 %"


def test_store_down_gives_503_and_a_message(staff_client: Client, monkeypatch: pytest.MonkeyPatch,
                                            spool_events) -> None:  # noqa: ANN001
    from pymongo.errors import ServerSelectionTimeoutError

    def down() -> None:
        raise ServerSelectionTimeoutError("no server")

    monkeypatch.setattr(data, "_db", down)
    page = staff_client.get(PAGE)
    assert page.status_code == 503
    assert b"does not answer" in page.content
    assert staff_client.get(DATA).status_code == 503
    assert staff_client.get(EXPORT).status_code == 503
    assert staff_client.get(LIVE).status_code == 503
    assert spool_events() == []  # looking at the dashboard is not recorded as site traffic


def test_bad_range_on_the_page_falls_back_to_the_default(staff_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ranges.DateRange] = []

    def fake(rng: ranges.DateRange) -> dict[str, Any]:
        seen.append(rng)
        raise PyMongoError("stop here")

    monkeypatch.setattr(data, "dashboard_data", fake)
    answer = staff_client.get(PAGE + "?start=2026-05-01&end=2026-04-01")
    assert b"after the end date" in answer.content
    assert seen == [ranges.default_range()]
