"""Dead letters for an operator: list them, rebuild what each one held, tell when a replay stored it.

A letter (pipeline.events.dead_letter) keeps the JSON text of what could not be stored:

- stage ``enrich``: the raw event as the shipper sent it (a spool line, or an event dict),
  replayed through ``eventlog.enrich`` exactly as the shipper sends it;
- stage ``store``: the enriched write the store refused (its datetimes tagged), replayed
  through ``eventlog.store``.

Replay is idempotent: a letter whose event is already stored is removed without sending
anything; a replayed one stays (marked ``replayed_at``, ``replays``) until its event is found
stored, then it is removed. Event ids make a second delivery of the same event harmless, and
an event refused again gets the same letter id, so it stays one letter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline import progress, reconcile
from pipeline.events import DATETIME_TAG, validate_page_view, validate_tracked
from pipeline.store import DEAD_LETTERS, EXIT_LINK_LOGS, TUTORIAL_PROGRESS_LOGS, WEBSITE_LOGS

STAGES = ("enrich", "store")


@dataclass
class Letter:
    """One dead letter and what a replay would send (``payload``; None: cannot be replayed, ``why``)."""

    id: str
    stage: str
    reason: str
    datetime: datetime | None
    replays: int
    payload: Any = None
    why: str = ""

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "stage": self.stage, "reason": self.reason,
                "datetime": self.datetime.isoformat() if self.datetime else None, "replays": self.replays,
                "replayable": self.payload is not None, "why_not": self.why or None}


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and DATETIME_TAG in obj:
        return datetime.fromisoformat(obj[DATETIME_TAG])
    return obj


def _still_invalid(raw: Any) -> str | None:
    """Why enrich would refuse ``raw`` again (its own validators, without the enrichment libraries)."""
    try:
        event = json.loads(raw) if isinstance(raw, str) else raw
        kind = event.get("kind") if isinstance(event, dict) else None
        if kind is None:
            validate_page_view(event)
        elif kind == "progress.report":
            progress.validate_report(event)
        elif kind == "progress.mark":
            progress.validate_mark(event)
        else:
            validate_tracked(event)
    except ValueError as exc:  # InvalidEvent, InvalidReport and JSON errors
        return str(exc)
    return None


def decode(doc: dict[str, Any]) -> Letter:
    """The Letter of a dead_letters document, with its payload rebuilt when it can be replayed."""
    letter = Letter(id=doc["_id"], stage=doc.get("stage", ""), reason=doc.get("reason", ""),
                    datetime=doc.get("datetime"), replays=int(doc.get("replays") or 0))
    text = doc.get("raw") or ""
    if letter.stage not in STAGES:
        letter.why = f"unknown stage {letter.stage!r}"
        return letter
    try:
        payload = json.loads(text, object_hook=_untag if letter.stage == "store" else None)
    except ValueError:
        letter.why = "the payload is cut short (too large) or not JSON"
        return letter
    if letter.stage == "store":
        if not isinstance(payload, dict) or "datetime.datetime(" in text:
            letter.why = "written by an older version (times kept as text)"
            return letter
    else:
        invalid = _still_invalid(payload)
        if invalid:
            letter.why = f"still invalid: {invalid}"
            return letter
    letter.payload = payload
    return letter


def letters(db: Any, stage: str | None = None, limit: int = 100, ids: list[str] | None = None) -> list[Letter]:
    """Dead letters, oldest first (all stages, or one), decoded."""
    query: dict[str, Any] = {}
    if stage:
        query["stage"] = stage
    if ids:
        query["_id"] = {"$in": list(ids)}
    cursor = db[DEAD_LETTERS].find(query).sort("datetime", 1).limit(max(0, limit))
    return [decode(doc) for doc in cursor]


def _write_stored(db: Any, write: dict[str, Any]) -> bool:
    kind = write.get("_write", "page_view")
    if kind == "exit_link":
        return db[EXIT_LINK_LOGS].find_one({"_id": write["_id"]}, {"_id": 1}) is not None
    if kind in ("progress_report", "progress_mark"):
        event = {"kind": kind.replace("_", "."), **write["event"]}
        return reconcile._progress_stored(db[TUTORIAL_PROGRESS_LOGS], event)
    doc = db[WEBSITE_LOGS].find_one({"_id": write["_id"]}, {"sources": 1, "source": 1})
    if doc is None:
        return False
    sources = doc.get("sources") or [doc.get("source")]
    wanted = write.get("source") if kind == "page_view" else write.get("set_on_insert", {}).get("source", "js")
    return wanted in sources


def is_stored(db: Any, letter: Letter) -> bool:
    """Whether what the letter held is now in the store (a replay, or a redelivery, got through)."""
    if letter.payload is None:
        return False
    if letter.stage == "store":
        return _write_stored(db, letter.payload)
    line = letter.payload if isinstance(letter.payload, str) else orjson.dumps(letter.payload).decode()
    return not reconcile.unstored(db, [line])


def mark_replayed(db: Any, letter: Letter) -> None:
    db[DEAD_LETTERS].update_one({"_id": letter.id}, {"$set": {"replayed_at": datetime.now(UTC)},
                                                      "$inc": {"replays": 1}})


def resolve(db: Any, letter: Letter) -> None:
    """The letter's event is stored: the letter goes (health counts what is left)."""
    db[DEAD_LETTERS].delete_one({"_id": letter.id})

