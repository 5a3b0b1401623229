"""manage.py eventlog_export / eventlog_erase against a real nx-27017 (pipeline/erasure.py
has the rules; tests/pipeline/test_erasure.py the rollups)."""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.helpers.mongo import private_database

BROWSER = "c" * 32


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with private_database(tmp_path_factory.mktemp("nx-erase-commands"), "eventlog_erase_cmd") as db:
        host, port = db.client.address
        url = os.environ.get("EVENTLOG_MONGO_URL") or f"mongodb://{host}:{port}"
        with override_settings(EVENTLOG_MONGO_URL=url, EVENTLOG_MONGO_DB=db.name):
            yield db


@pytest.fixture
def db(database: Any) -> Any:
    for name in database.list_collection_names():
        database[name].delete_many({})
    when = datetime.now(UTC) - timedelta(hours=1)
    views = [{"_id": uuid.uuid4().hex, "path_info": "/", "visited_by": user, "visitor_id": visitor,
              "datetime": when, "stored_at": when, "ip_address": "81.2.69.0"}
             for user, visitor in (("AnonymousUser", BROWSER), ("carol", BROWSER), ("dan", "d" * 32))]
    database.website_logs.insert_many(views)
    database.tutorial_progress_logs.insert_many([{"username": "carol", "foss": "BASH", "tutorial": "Loops"},
                                                 {"username": "dan", "foss": "BASH", "tutorial": "Loops"}])
    return database


def test_export_writes_json_lines_to_a_file(db: Any, tmp_path: Path) -> None:
    out = tmp_path / "carol.jsonl"
    err = io.StringIO()
    call_command("eventlog_export", username="carol", output=str(out), stderr=err)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["collection"] for r in rows) == ["tutorial_progress_logs", "website_logs", "website_logs"]
    assert "dan" not in out.read_text()
    assert "exported 3 documents" in err.getvalue()


def test_export_to_stdout_is_only_json_lines(db: Any) -> None:
    out = io.StringIO()
    call_command("eventlog_export", visitor_id=BROWSER, stdout=out, stderr=io.StringIO())
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["collection"] == "website_logs" for line in lines)


def test_erase_dry_run_then_erase(db: Any) -> None:
    out = io.StringIO()
    call_command("eventlog_erase", username="carol", dry_run=True, stdout=out)
    assert "would delete 3 documents" in out.getvalue()
    assert db.website_logs.count_documents({}) == 3
    out = io.StringIO()
    call_command("eventlog_erase", username="carol", stdout=out)
    assert "deleted 3 documents" in out.getvalue() and "rollups recomputed" in out.getvalue()
    assert [d["visited_by"] for d in db.website_logs.find()] == ["dan"]
    assert [d["username"] for d in db.tutorial_progress_logs.find()] == ["dan"]


def test_erase_again_catches_what_arrives_afterwards(db: Any) -> None:
    """--again-for: an event of theirs stored after the first pass (it was in flight) goes too."""
    late = {"_id": uuid.uuid4().hex, "path_info": "/late/", "visited_by": "AnonymousUser", "visitor_id": BROWSER,
            "datetime": datetime.now(UTC), "stored_at": datetime.now(UTC)}
    from pipeline import erasure

    real_erase, passes = erasure.erase, []

    def erase_then_deliver(*args: Any, **kwargs: Any) -> dict[str, Any]:
        result = real_erase(*args, **kwargs)
        if not passes:
            db.website_logs.insert_one(late)  # the event in flight reaches MongoDB after the first pass
        passes.append(result)
        return result

    from django_hook.management.commands import eventlog_erase

    original = eventlog_erase.erase
    eventlog_erase.erase = erase_then_deliver
    try:
        call_command("eventlog_erase", username="carol", again_for=0.02, every=0.3, stdout=io.StringIO())
    finally:
        eventlog_erase.erase = original
    assert len(passes) >= 2 and passes[1]["deleted"].get("website_logs") == 1
    assert [d["visited_by"] for d in db.website_logs.find()] == ["dan"]


def test_a_learner_must_be_named(db: Any) -> None:
    with pytest.raises(CommandError):
        call_command("eventlog_erase")
