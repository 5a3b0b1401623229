"""Dead letters rebuilt for a replay: a store-stage letter gives back the very write it held (same
letter id if refused again), an enrich-stage one the line as shipped; what cannot be replayed says why."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest

from pipeline import deadletters
from pipeline.enrich import enrich_events
from pipeline.events import dead_letter
from pipeline.store import EventStore
from tests.integration.test_ingest import raw_event


@pytest.fixture
def store(mongo) -> Iterator[EventStore]:  # noqa: ANN001
    s = EventStore(mongo.url, f"deadletters_{uuid.uuid4().hex[:8]}")
    yield s
    s.client.drop_database(s.db.name)
    s.client.close()


def _write(path: str = "/tutorial-search/") -> dict:
    (write,), dead = enrich_events([raw_event(path)], None)
    assert dead == []
    return write


def test_a_store_letter_gives_back_the_write_with_its_datetimes() -> None:
    write = _write()
    letter = deadletters.decode(dead_letter(write, "refused", stage="store"))
    assert letter.payload == write and isinstance(letter.payload["datetime"], datetime)
    assert letter.payload["datetime"].tzinfo is not None
    # Refused again, the rebuilt write is the same letter (one letter per event, not one per replay).
    assert dead_letter(letter.payload, "refused again", stage="store")["_id"] == letter.id


def test_an_enrich_letter_gives_back_the_line_as_shipped() -> None:
    line = orjson.dumps(raw_event("/watch/BASH/Intro/English/")).decode()
    letter = deadletters.decode(dead_letter(line, "refused by an older version", stage="enrich"))
    assert letter.payload == line and letter.why == ""


@pytest.mark.parametrize(("doc", "why"), [
    (dead_letter("{not json", "torn", stage="enrich"), "still invalid"),
    (dead_letter({"path_info": "no-slash"}, "invalid", stage="enrich"), "still invalid"),
    ({"_id": "x", "stage": "store", "reason": "r", "raw": '{"_id": "a", "datetime": "datetime.datetime(2026, 1'},
     "cut short"),
    ({"_id": "y", "stage": "store", "reason": "r",
      "raw": json.dumps({"_id": "a", "datetime": "datetime.datetime(2026, 1, 1, 0, 0)"})}, "older version"),
    ({"_id": "z", "stage": "elsewhere", "reason": "r", "raw": "{}"}, "unknown stage"),
])
def test_what_cannot_be_replayed_says_why(doc: dict, why: str) -> None:
    letter = deadletters.decode(doc)
    assert letter.payload is None and why in letter.why


def test_is_stored_follows_the_store(store: EventStore) -> None:
    raw = raw_event("/cdcontent/")
    line = orjson.dumps(raw).decode()
    write = _write("/tutorial-search/?foss=BASH")
    enrich_letter = deadletters.decode(dead_letter(line, "x", stage="enrich"))
    store_letter = deadletters.decode(dead_letter(write, "x", stage="store"))
    assert not deadletters.is_stored(store.db, enrich_letter) and not deadletters.is_stored(store.db, store_letter)
    (enriched,), _ = enrich_events([line], None)
    store.store_or_dead_letter([enriched, write])
    assert deadletters.is_stored(store.db, enrich_letter) and deadletters.is_stored(store.db, store_letter)


def test_letters_mark_and_resolve(store: EventStore) -> None:
    docs = [dead_letter(_write(f"/p/{i}"), "refused", stage="store") for i in range(3)]
    docs.append(dead_letter("{torn", "torn", stage="enrich"))
    store.store_dead_letters(docs)
    assert {x.id for x in deadletters.letters(store.db, stage="store")} == {d["_id"] for d in docs[:3]}
    first = deadletters.letters(store.db, ids=[docs[0]["_id"]])[0]
    deadletters.mark_replayed(store.db, first)
    assert deadletters.letters(store.db, ids=[first.id])[0].replays == 1
    deadletters.resolve(store.db, first)
    assert len(deadletters.letters(store.db)) == 3
