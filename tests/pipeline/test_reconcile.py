"""The end-to-end check on a real server: spool lines are enriched and stored by the real
stages, and missing_lines names exactly the ones that were not."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline import reconcile
from pipeline.enrich import enrich_events
from pipeline.events import new_event_id
from pipeline.store import EventStore
from tests.helpers.mongo import emptied, private_event_store

COLLECTIONS = ("website_logs", "exit_link_logs", "tutorial_progress_logs", "dead_letters")
NOW = time.time()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    with private_event_store(tmp_path_factory.mktemp("nx-reconcile"), "eventlog_reconcile") as event_store:
        yield event_store


@pytest.fixture
def empty(store: EventStore) -> EventStore:
    emptied(store.db, COLLECTIONS)
    return store


def page_view(**fields: Any) -> dict[str, Any]:
    return {"event_id": new_event_id(), "source": "middleware", "path_info": "/cdcontent/",
            "visited_by": "AnonymousUser", "user_agent": "Mozilla/5.0", "ip_address": "81.2.69.142",
            "datetime": NOW, "first_time_visit": True, "method": "GET", "referrer": "", "page_title": "",
            "view_args": [], "view_kwargs": {}, "post_data": None, **fields}


def tracked(kind: str, page_view_id: str, **fields: Any) -> dict[str, Any]:
    return {"kind": f"js.{kind}", "event_id": uuid.uuid4().hex, "page_view_id": page_view_id, "path": "/",
            "ts": int(NOW * 1000), "source": "js", "visited_by": "AnonymousUser", "ip_address": "81.2.69.142",
            "user_agent": "Mozilla/5.0", "visitor_id": None, "first_time_visit": True, "received": NOW,
            **fields}


def report(visit: str, minutes: list[int]) -> dict[str, Any]:
    return {"kind": "progress.report", "username": "learner1", "foss": "BASH", "language": "English",
            "tutorial": "Basics", "video_length": 600, "position": minutes[-1] * 60 + 5, "minutes": minutes,
            "visit_id": visit, "report_id": uuid.uuid4().hex, "at": datetime.now(UTC).isoformat()}


def mark(completed: bool, at: datetime) -> dict[str, Any]:
    return {"kind": "progress.mark", "username": "learner1", "foss": "BASH", "language": "English",
            "tutorial": "Basics", "completed": completed, "at": at.isoformat()}


def lines(*events: dict[str, Any]) -> list[str]:
    return [json.dumps(e) for e in events]


def store_lines(store: EventStore, spooled: list[str]) -> None:
    """What the enrich and store stages do with shipped lines."""
    writes, dead = enrich_events(spooled, None, False)
    store.store_dead_letters(dead)
    store.store_or_dead_letter(writes)


def test_everything_stored_is_found(empty: EventStore) -> None:
    view = page_view()
    pv = view["event_id"]
    now = datetime.now(UTC)
    shipped = lines(view, tracked("pageview", pv, title="Home"), tracked("visit_end", pv, duration_ms=5000),
                    tracked("exit", pv, url="https://www.gnu.org/"), report("v1", [0, 1]),
                    mark(True, now))
    store_lines(empty, shipped)
    assert reconcile.missing_lines(empty.db, shipped) == []


def test_each_kind_not_stored_is_missing(empty: EventStore) -> None:
    stored_view, lost_view = page_view(), page_view()
    pv = stored_view["event_id"]
    store_lines(empty, lines(stored_view, report("v1", [0, 1]), mark(False, datetime.now(UTC))))
    lost = lines(lost_view, tracked("pageview", lost_view["event_id"], title="Lost"),
                 tracked("visit_end", pv, duration_ms=9000), tracked("exit", pv, url="https://www.gnu.org/"),
                 report("v2", [2]), mark(True, datetime.now(UTC) + timedelta(minutes=1)))
    assert reconcile.missing_lines(empty.db, lines(stored_view) + lost) == lost


def test_a_shorter_visit_end_than_stored_is_found(empty: EventStore) -> None:
    view = page_view()
    pv = view["event_id"]
    store_lines(empty, lines(view, tracked("visit_end", pv, duration_ms=9000)))
    assert reconcile.missing_lines(empty.db, lines(tracked("visit_end", pv, duration_ms=4000))) == []


def test_dead_lettered_lines_are_not_missing(empty: EventStore) -> None:
    torn = '{"event_id": "abc", "path_in'
    invalid = json.dumps(page_view(ip_address="not-an-ip"))
    store_lines(empty, [torn, invalid])
    assert empty.dead_letters.count_documents({"stage": "enrich"}) == 2
    assert reconcile.missing_lines(empty.db, [torn, invalid]) == []


def test_a_write_the_store_refused_is_not_missing(tmp_path: Path) -> None:
    # A database of its own: nx-27017 keeps enforcing a unique index after drop_index.
    with private_event_store(tmp_path, "eventlog_reconcile_refused") as own:
        own.website_logs.create_index("referrer", unique=True, name="test_unique_referrer")
        first, clash = page_view(referrer="https://r.example/"), page_view(referrer="https://r.example/")
        store_lines(own, lines(first, clash))
        assert own.dead_letters.count_documents({"stage": "store"}) == 1
        assert reconcile.missing_lines(own.db, lines(first, clash)) == []


def test_the_pipeline_has_passed_once_a_later_page_view_is_stored(empty: EventStore) -> None:
    shipped_at = datetime.now(UTC)
    assert not reconcile.pipeline_has_passed(empty.db, shipped_at)
    store_lines(empty, lines(page_view(datetime=shipped_at.timestamp() - 5)))
    assert not reconcile.pipeline_has_passed(empty.db, shipped_at)
    store_lines(empty, lines(page_view(datetime=shipped_at.timestamp() + 5)))
    assert reconcile.pipeline_has_passed(empty.db, shipped_at)
