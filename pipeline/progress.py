"""Tutorial/video progress: minutes watched, the 80 % rule, resume position, course percent.

One document per (username, foss, language, tutorial) in ``tutorial_progress_logs``; the same
tutorial in another language is separate progress. The player reports whenever the minute of
the video changes and on pause/end, with the minutes it actually *played* since its last report.
The server keeps the SET of those minutes, so skipping, seeking back, fast-forwarding and
rewatching all count correctly, and seeking to the end only moves the position.

Two faces of the same rules:

1. Pure functions over a state dict (``apply_report``, ``apply_mark``, ``percent_watched``,
   ``course_progress``) for unit tests and read-your-writes overlays.
2. MongoDB update builders (``report_updates``, ``mark_updates``) and their runners
   (``apply_report_to_collection``, ``apply_mark_to_collection``) whose effect equals the pure
   functions. Every step is a single-document atomic update built only from
   $set/$setOnInsert/$addToSet+$each guarded by plain filters (no $expr), so concurrent
   reports never lose minutes and a retried report is a no-op.

Storage choices (why the stored document differs a little from the state dict):

- Times (``last_report_at``, ``completed_at``, ``marked_at``, ``first_watched_at``) are stored
  as fixed-width ISO-8601 UTC strings with millisecond precision, ``2024-05-01T10:00:00.000Z``.
  nx-27017 0.8.1 stores a datetime written by $set/$max into an existing document as a naive,
  second-precision string and never raises a stored date with $max; fixed-width UTC strings
  order like the instants they name. ``from_doc`` turns them back into aware datetimes, so the
  state dict holds datetimes. They are not what filters compare to decide "newer" (next item).
- Which report (or mark) is the newest is decided by ``report_order`` (``mark_order``), a
  string that sorts like (time in epoch milliseconds, report_id) (like (time, completed) for a
  mark), never by comparing stored times in a filter: neosqlite under nx-27017 compares any
  filter value that looks like an ISO date through SQLite's ``datetime()``, which keeps whole
  seconds only, so ``{"last_report_at": "...:29.000Z"}`` matches a stored ``"...:29.001Z"``. The
  orders start with a letter, so nx-27017 compares them as the plain strings they are, byte by
  byte like MongoDB. The newest report's fields (order, ``last_report_at``, ``resume_position``,
  ``last_report_id``) are written together by ONE update whose filter says "stored order below
  mine", so under any interleaving the largest order wins, readers never see one report's time
  with another's position, and equal times have a winner too (the larger report_id).
- A time that was never set is absent from the document (None in the state): nx-27017 does not
  match an explicit null with ``{field: None}``, while ``{"$exists": False}`` works everywhere.
- ``visits`` is kept in sync with ``len(visit_ids)`` by a conditional $set guarded by
  ``{"visit_ids": {"$size": n}}`` after the upsert (a stale writer cannot lower it because the
  set only grows), and ``from_doc`` derives it from ``visit_ids`` on read anyway.
- $addToSet appends, so ``minutes_watched`` is re-sorted the same way (guarded by $size: equal
  size means the same set, because nothing removes minutes) when it arrives out of order.
- Booleans come back as 0/1 from nx-27017 after a $set; ``from_doc`` turns them into bools.

``ensure_indexes`` must have run once: the unique key index is what makes a concurrent first
upsert from two tabs end as one document.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

COLLECTION = "tutorial_progress_logs"
KEY_FIELDS = ("username", "foss", "language", "tutorial")
MAX_NAME_LENGTH = 200
MAX_ID_LENGTH = 128
MAX_VIDEO_LENGTH = 6 * 3600  # seconds; anything longer is a broken player, not a tutorial
POSITION_TOLERANCE = 2  # seconds a player may report past the end (rounding, end event)
DUPLICATE_KEY = 11000
# pymongo.ReturnDocument.AFTER is plain True; spelled out here so this module needs no pymongo.
RETURN_AFTER = True

# pymongo Collection (or anything with the same methods); kept duck-typed on purpose.
MongoCollection = Any


class InvalidReport(ValueError):
    """A progress report or mark that must not be stored (the message says why)."""


@dataclass(frozen=True)
class Report:
    """A validated player report (see ``validate_report``)."""

    username: str
    foss: str
    language: str
    tutorial: str
    video_length: float
    position: float
    minutes: tuple[int, ...]
    visit_id: str
    report_id: str
    at: datetime

    @property
    def key(self) -> dict[str, str]:
        return progress_key(self.username, self.foss, self.language, self.tutorial)

    @property
    def total_minutes(self) -> int:
        return total_minutes(self.video_length)

    @property
    def resume_position(self) -> int:
        return resume_position_for(self.position, self.total_minutes)


@dataclass(frozen=True)
class Mark:
    """A validated manual mark (see ``validate_mark``)."""

    username: str
    foss: str
    language: str
    tutorial: str
    completed: bool
    at: datetime

    @property
    def key(self) -> dict[str, str]:
        return progress_key(self.username, self.foss, self.language, self.tutorial)


# ------------------------------------------------------------------ rules


def total_minutes(video_length: float) -> int:
    """Number of minute slots in a video: ceil(video_length / 60); a partial last minute counts."""
    return math.ceil(video_length / 60)


def minutes_needed(total: int) -> int:
    """Distinct minutes to watch for completion: ceil(0.8 * total).

    Rounding up means 80 % is a floor that is never undercut: 1 -> 1, 4 -> 4 (3 would be 75 %),
    5 -> 4, 7 -> 6, 10 -> 8. Integer arithmetic because 0.8 * 35 is 28.000000000000004 in
    floating point, which ceil would turn into 29.
    """
    return -(-4 * total // 5)


def resume_position_for(position: float, total: int) -> int:
    """Start (seconds) of the minute holding ``position``.

    Clamped to the last minute: a report at the very end (position == video_length) resumes at
    the start of the last minute rather than at a minute that does not exist.
    """
    return min(int(position // 60), max(total - 1, 0)) * 60


def _percent(part: int, whole: int) -> int:
    """part/whole as an integer percent, rounded half up (1 of 8 -> 13).

    Capped at 99 while part < whole so that "100 %" always means everything, even where
    rounding half up would show 99.5 % as 100.
    """
    if whole <= 0:
        return 0
    value = (200 * part + whole) // (2 * whole)
    return min(value, 99) if part < whole else min(value, 100)


# ------------------------------------------------------------------ time


def _utc_ms(value: datetime) -> datetime:
    """Aware UTC, truncated to milliseconds (what MongoDB keeps and our string format holds)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_time(value: datetime) -> str:
    """Stored form of a time: fixed-width ISO-8601 UTC with milliseconds, e.g. 2024-05-01T10:00:00.000Z."""
    value = _utc_ms(value)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def parse_time(value: Any) -> datetime | None:
    """A stored time (our string, a BSON date, or nx-27017's naive string) as aware UTC; None if unset."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _utc_ms(value)
    if isinstance(value, str):
        return _utc_ms(datetime.fromisoformat(value))
    raise TypeError(f"not a time: {value!r}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms(value: datetime) -> int:
    return (_utc_ms(value) - _EPOCH) // timedelta(milliseconds=1)


def report_order(at: datetime, report_id: str) -> str:
    """Sort key of a report: by time (to the millisecond), then by report_id.

    Fixed-width digits (15 cover year 9999) make string order equal (time, report_id) order, and
    the leading letter keeps nx-27017 from taking it for a date (see the module docstring).
    The report_id breaks ties, so two reports made in the same millisecond end the same way
    whichever arrives first.
    """
    return f"r{_epoch_ms(at):015d}:{report_id}"


def mark_order(at: datetime, completed: bool) -> str:
    """Sort key of a manual mark: by time, then complete over incomplete at the same instant."""
    return f"m{_epoch_ms(at):015d}:{int(completed)}"


# ------------------------------------------------------------------ validation


def _field(raw: Mapping[str, Any], name: str) -> Any:
    if name not in raw:
        raise InvalidReport(f"{name} is missing")
    return raw[name]


def _text(raw: Mapping[str, Any], name: str, max_length: int) -> str:
    value = _field(raw, name)
    if not isinstance(value, str):
        raise InvalidReport(f"{name} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidReport(f"{name} must not be empty")
    if len(value) > max_length:
        raise InvalidReport(f"{name} is longer than {max_length} characters")
    return value


def _number(raw: Mapping[str, Any], name: str) -> float:
    value = _field(raw, name)
    # bool is an int subclass; True as a position is a client bug, not one second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidReport(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidReport(f"{name} must be finite")
    return value


def _time(raw: Mapping[str, Any], name: str) -> datetime:
    value = _field(raw, name)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidReport(f"{name} is not an ISO-8601 time: {value[:40]!r}") from None
    if not isinstance(value, datetime):
        raise InvalidReport(f"{name} must be a datetime, not {type(value).__name__}")
    try:
        value = _utc_ms(value)
    except (OverflowError, ValueError):
        raise InvalidReport(f"{name} is out of range: {value.isoformat()}") from None
    # Four-digit years keep the stored strings fixed-width, hence ordered like the instants.
    if not 1970 <= value.year <= 9999:
        raise InvalidReport(f"{name} is out of range: {value.isoformat()}")
    return value


def _names(raw: Mapping[str, Any]) -> dict[str, str]:
    return {name: _text(raw, name, MAX_NAME_LENGTH) for name in KEY_FIELDS}


def _minutes(raw: Mapping[str, Any], total: int) -> tuple[int, ...]:
    value = _field(raw, "minutes")
    if not isinstance(value, list | tuple):
        raise InvalidReport(f"minutes must be a list, not {type(value).__name__}")
    # A player cannot play more distinct minutes than the video has between two reports.
    if len(value) > total:
        raise InvalidReport(f"too many minutes in one report: {len(value)} for a {total}-minute video")
    for minute in value:
        if isinstance(minute, bool) or not isinstance(minute, int):
            raise InvalidReport(f"minutes must be integers, got {minute!r}")
        if not 0 <= minute < total:
            raise InvalidReport(f"minute {minute} is outside [0, {total}) for this video")
    return tuple(sorted(set(value)))


def validate_report(raw: Report | Mapping[str, Any]) -> Report:
    """Check a raw player report and return it as a ``Report``; raise ``InvalidReport`` otherwise."""
    if isinstance(raw, Report):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidReport(f"a report must be a mapping, not {type(raw).__name__}")
    names = _names(raw)
    video_length = _number(raw, "video_length")
    if not 0 < video_length <= MAX_VIDEO_LENGTH:
        raise InvalidReport(f"video_length must be in (0, {MAX_VIDEO_LENGTH}] seconds, got {video_length}")
    position = _number(raw, "position")
    if position < 0:
        raise InvalidReport(f"position must not be negative, got {position}")
    if position > video_length + POSITION_TOLERANCE:
        raise InvalidReport(f"position {position} is beyond the end of a {video_length}-second video")
    return Report(
        **names,
        video_length=video_length,
        position=position,
        minutes=_minutes(raw, total_minutes(video_length)),
        visit_id=_text(raw, "visit_id", MAX_ID_LENGTH),
        report_id=_text(raw, "report_id", MAX_ID_LENGTH),
        at=_time(raw, "at"),
    )


def validate_mark(raw: Mark | Mapping[str, Any]) -> Mark:
    """Check a raw manual mark (keys, ``completed`` bool, ``at``); raise ``InvalidReport`` otherwise."""
    if isinstance(raw, Mark):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidReport(f"a mark must be a mapping, not {type(raw).__name__}")
    names = _names(raw)
    completed = _field(raw, "completed")
    if not isinstance(completed, bool):
        raise InvalidReport(f"completed must be true or false, not {completed!r}")
    return Mark(**names, completed=completed, at=_time(raw, "at"))


# ------------------------------------------------------------------ state


def progress_key(username: str, foss: str, language: str, tutorial: str) -> dict[str, str]:
    """The filter naming one progress document."""
    return {"username": username, "foss": foss, "language": language, "tutorial": tutorial}


def course_filter(username: str, foss: str, language: str) -> dict[str, str]:
    """The filter for a user's progress documents in one course (foss + language)."""
    return {"username": username, "foss": foss, "language": language}


def new_state(username: str, foss: str, language: str, tutorial: str) -> dict[str, Any]:
    """Progress of a tutorial nobody has touched yet."""
    return {
        **progress_key(username, foss, language, tutorial),
        "video_length": None,
        "total_minutes": 0,
        "minutes_watched": [],
        "resume_position": 0,
        "last_report_at": None,
        "last_report_id": None,
        "visit_ids": [],
        "visits": 0,
        "completed": False,
        "completed_at": None,
        "manual": False,
        "marked_at": None,
        "first_watched_at": None,
    }


def from_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document (or a state) as a normalised state: datetimes, bools, sorted minutes.

    Only the progress fields are kept (no ``_id``), so a stored document and the pure result of
    the same reports compare equal.

    ``visits`` is derived from ``visit_ids`` here, so readers are right even before the
    conditional $set that keeps the stored counter in sync has run.
    """
    state = new_state(*(doc[name] for name in KEY_FIELDS))
    visit_ids = list(dict.fromkeys(doc.get("visit_ids") or []))
    state.update(
        video_length=doc.get("video_length"),
        total_minutes=int(doc.get("total_minutes") or 0),
        minutes_watched=sorted({int(m) for m in doc.get("minutes_watched") or []}),
        resume_position=int(doc.get("resume_position") or 0),
        last_report_id=doc.get("last_report_id"),
        visit_ids=visit_ids,
        visits=len(visit_ids),
        completed=bool(doc.get("completed")),
        manual=bool(doc.get("manual")),
    )
    for name in ("last_report_at", "completed_at", "marked_at", "first_watched_at"):
        state[name] = parse_time(doc.get(name))
    return state


def _start(state: Mapping[str, Any] | None, key: Mapping[str, str]) -> dict[str, Any]:
    if state is None:
        return new_state(*(key[name] for name in KEY_FIELDS))
    current = from_doc(state)
    if any(current[name] != key[name] for name in KEY_FIELDS):
        # Another language (or tutorial) is separate progress; mixing them is a caller bug.
        raise InvalidReport("the report is for a different (username, foss, language, tutorial) than the state")
    return current


def _auto_completes(state: Mapping[str, Any], total: int) -> bool:
    """The automatic rule: enough distinct minutes, unless the user's manual mark decides."""
    return (
        not state["manual"]
        and not state["completed"]
        and state["completed_at"] is None
        and len(state["minutes_watched"]) >= minutes_needed(total)
    )


def apply_report(state: Mapping[str, Any] | None, report: Report | Mapping[str, Any]) -> dict[str, Any]:
    """New state after a player report (pure; ``state`` may be a stored document or None)."""
    report = validate_report(report)
    new = _start(state, report.key)
    # Only minutes actually played join the set; a seek moves the position and nothing else.
    new["minutes_watched"] = sorted(set(new["minutes_watched"]) | set(report.minutes))
    if report.visit_id not in new["visit_ids"]:
        new["visit_ids"] = [*new["visit_ids"], report.visit_id]
    new["visits"] = len(new["visit_ids"])
    new["video_length"] = report.video_length
    new["total_minutes"] = report.total_minutes
    if new["first_watched_at"] is None:
        new["first_watched_at"] = report.at
    # The resume position follows the most recent report by (time, report_id), so a late retry of
    # an older report (or two tabs out of order) never moves it back, and the same report again
    # changes nothing. The same total order as the server's report_order, ties included.
    if new["last_report_at"] is None or report_order(report.at, report.report_id) > report_order(
        new["last_report_at"], new["last_report_id"] or ""
    ):
        new["last_report_at"] = report.at
        new["resume_position"] = report.resume_position
        new["last_report_id"] = report.report_id
    if _auto_completes(new, report.total_minutes):
        new["completed"] = True
        new["completed_at"] = report.at
    return new


def apply_mark(state: Mapping[str, Any] | None, mark: Mark | Mapping[str, Any]) -> dict[str, Any]:
    """New state after a manual mark: it wins over the 80 % rule until the user marks again.

    ``completed_at`` is set once, the first time the tutorial becomes complete, and kept when it
    is later marked incomplete (``completed`` is what says whether it is complete now). A mark
    older than the current one is ignored; of two marks made at the same instant, complete wins
    (``mark_order``), so the outcome does not depend on which arrives first.
    """
    mark = validate_mark(mark)
    new = _start(state, mark.key)
    # While marked, ``completed`` is the newest mark's decision (the automatic rule stays out).
    if new["marked_at"] is None or mark_order(mark.at, mark.completed) > mark_order(
        new["marked_at"], new["completed"]
    ):
        new["marked_at"] = mark.at
        new["completed"] = mark.completed
        new["manual"] = True
        if mark.completed and new["completed_at"] is None:
            new["completed_at"] = mark.at
    return new


def percent_watched(state: Mapping[str, Any] | None) -> int:
    """Distinct minutes watched over total minutes, integer percent rounded half up (99 until all)."""
    if state is None:
        return 0
    state = from_doc(state)
    total = state["total_minutes"]
    return _percent(min(len(state["minutes_watched"]), total), total)


def summary(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the player and the course page show for one tutorial."""
    if state is None:
        return {"started": False, "completed": False, "manual": False, "percent_watched": 0,
                "resume_position": 0, "visits": 0, "last_report_at": None, "completed_at": None}
    state = from_doc(state)
    return {
        "started": state["last_report_at"] is not None,
        "completed": state["completed"],
        "manual": state["manual"],
        "percent_watched": percent_watched(state),
        "resume_position": state["resume_position"],
        "visits": state["visits"],
        "last_report_at": state["last_report_at"],
        "completed_at": state["completed_at"],
    }


def _continue_with(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most recently reported incomplete tutorial, else the first incomplete one in order."""
    incomplete = [row for row in rows if not row["completed"]]
    reported = [row for row in incomplete if row["last_report_at"] is not None]
    if reported:
        # max() keeps the first of equal times, i.e. the earlier one in course order.
        return max(reported, key=lambda row: row["last_report_at"])
    return incomplete[0] if incomplete else None


def course_progress(
    titles: Iterable[str],
    docs: Iterable[Mapping[str, Any]],
    *,
    foss: str | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """Progress through a course (the ordered tutorial titles of one foss + language).

    ``docs`` are the user's progress documents or states; with ``foss``/``language`` given,
    documents of other courses or languages are ignored, as are tutorials not in ``titles``.
    ``percent`` is completed/total rounded half up (1 of 8 -> 13), and only 100 when all are.
    """
    ordered = list(dict.fromkeys(titles))
    by_title: dict[str, dict[str, Any]] = {}
    for doc in docs:
        state = from_doc(doc)
        if (foss is not None and state["foss"] != foss) or (language is not None and state["language"] != language):
            continue
        by_title[state["tutorial"]] = state
    rows = [{"tutorial": title, **summary(by_title.get(title))} for title in ordered]
    completed = sum(1 for row in rows if row["completed"])
    nxt = _continue_with(rows)
    return {
        "total": len(rows),
        "completed": completed,
        "percent": _percent(completed, len(rows)),
        "tutorials": rows,
        "continue_with": nxt["tutorial"] if nxt else None,
        "resume_position": nxt["resume_position"] if nxt else 0,
    }


# ------------------------------------------------------------------ MongoDB update builders

Update = tuple[dict[str, Any], dict[str, Any]]


def _first_watched_update(key: dict[str, str], at: str) -> Update:
    # A document a mark created has no first_watched_at, and $setOnInsert will not fire again.
    return {**key, "first_watched_at": {"$exists": False}}, {"$set": {"first_watched_at": at}}


def _newer_than_stored(order_field: str, order: str, time_field: str, at: str) -> dict[str, Any]:
    """Filter: the stored order is below ``order`` (or there is none yet).

    The test and the write are one update, so two writers cannot interleave between them; the
    stored order only rises, so the largest order ends up stored whatever the arrival order.
    Merge it into a filter with ``{**key, **this}``: the $or sits inside an $and because nx-27017
    translates a top-level $or beside other fields as ``key AND a OR b`` (no parentheses), which
    matches other documents; inside $and it is parenthesised, and MongoDB means the same either way.
    """
    return {"$and": [{"$or": [
        {order_field: {"$lt": order}},
        {order_field: {"$exists": False}, time_field: {"$exists": False}},
        # Written before the order field existed: fall back to the time (nx-27017 compares that
        # to the second only); the first write through here adds the order field.
        {order_field: {"$exists": False}, time_field: {"$lte": at}},
    ]}]}


def _last_report_fields(report: Report, at: str) -> dict[str, Any]:
    return {
        "report_order": report_order(report.at, report.report_id),
        "last_report_at": at,
        "resume_position": report.resume_position,
        "last_report_id": report.report_id,
    }


def _resume_update(report: Report, at: str) -> Update:
    # One conditional update for all of the newest report's fields: a separate $max of the time
    # followed by a $set of the position guarded by "time == mine" let an older report's $set land
    # after a newer one (nx-27017 matches the guard to the second only), a lost update.
    order = report_order(report.at, report.report_id)
    return (
        {**report.key, **_newer_than_stored("report_order", order, "last_report_at", at)},
        {"$set": _last_report_fields(report, at)},
    )


def _completion_update(report: Report, at: str) -> Update:
    # "At least n minutes" without $expr: the array's size is none of 0 .. n-1. The filter alone
    # decides, so running it blindly, twice or concurrently is safe; completed_at is set once.
    too_few = [{"minutes_watched": {"$size": size}} for size in range(minutes_needed(report.total_minutes))]
    return (
        {**report.key, "completed": False, "manual": False, "completed_at": {"$exists": False}, "$nor": too_few},
        {"$set": {"completed": True, "completed_at": at}},
    )


def report_updates(report: Report | Mapping[str, Any]) -> list[Update]:
    """(filter, update) pairs that apply a report: the first is an upsert, the rest conditional.

    Order: upsert (minutes and visit ids via $addToSet/$each, $set video_length/total_minutes,
    $setOnInsert keys/first_watched_at/this report as the last one/initial fields), then
    first_watched_at for mark-created documents, the last report's fields (time, resume position,
    id, order) if this report is newer than the stored one, and completion. Each is idempotent,
    so a retry of the whole list changes nothing.
    """
    report = validate_report(report)
    at = format_time(report.at)
    upsert = {
        "$setOnInsert": {
            **report.key,
            "first_watched_at": at,
            **_last_report_fields(report, at),
            "visits": 1,
            "completed": False,
            "manual": False,
        },
        "$addToSet": {
            "minutes_watched": {"$each": list(report.minutes)},
            "visit_ids": {"$each": [report.visit_id]},
        },
        "$set": {"video_length": report.video_length, "total_minutes": report.total_minutes},
    }
    return [
        (report.key, upsert),
        _first_watched_update(report.key, at),
        _resume_update(report, at),
        _completion_update(report, at),
    ]


def mark_updates(mark: Mark | Mapping[str, Any]) -> list[Update]:
    """(filter, update) pairs that apply a manual mark: an upsert, then conditional updates.

    The upsert creates a document with this mark applied; on an existing document the decision
    (with ``marked_at`` and ``mark_order``) is written by one update whose filter says "stored
    mark older than this one", so marks applied in any order and interleaving end as the newest
    says. A mark that completes comes first in a variant that also records ``completed_at``
    (only where none is recorded), in the same update, so it is never lost between two writes.
    """
    mark = validate_mark(mark)
    at = format_time(mark.at)
    order = mark_order(mark.at, mark.completed)
    decision = {"completed": mark.completed, "manual": True, "marked_at": at, "mark_order": order}
    on_insert: dict[str, Any] = {
        **mark.key,
        "video_length": None,
        "total_minutes": 0,
        "minutes_watched": [],
        "visit_ids": [],
        "visits": 0,
        "resume_position": 0,
        "last_report_id": None,
        **decision,
    }
    if mark.completed:
        on_insert["completed_at"] = at
    newer = {**mark.key, **_newer_than_stored("mark_order", order, "marked_at", at)}
    updates: list[Update] = [(mark.key, {"$setOnInsert": on_insert})]
    if mark.completed:
        updates.append(({**newer, "completed_at": {"$exists": False}}, {"$set": {**decision, "completed_at": at}}))
    updates.append((newer, {"$set": decision}))
    return updates


def housekeeping_updates(doc: Mapping[str, Any]) -> list[Update]:
    """Conditional updates that bring ``visits`` and the order of ``minutes_watched`` in line.

    Guarded by $size: both sets only grow, so an unchanged size means an unchanged set and a
    writer holding an older read cannot undo a newer one.
    """
    key = progress_key(*(doc[name] for name in KEY_FIELDS))
    updates: list[Update] = []
    visit_ids = list(doc.get("visit_ids") or [])
    if doc.get("visits") != len(visit_ids):
        updates.append(({**key, "visit_ids": {"$size": len(visit_ids)}}, {"$set": {"visits": len(visit_ids)}}))
    minutes = list(doc.get("minutes_watched") or [])
    if minutes != sorted(set(minutes)):
        updates.append((
            {**key, "minutes_watched": {"$size": len(minutes)}},
            {"$set": {"minutes_watched": sorted(set(minutes))}},
        ))
    return updates


# ------------------------------------------------------------------ MongoDB runners


def ensure_indexes(collection: MongoCollection) -> None:
    """The unique key index: without it two tabs' first reports could insert two documents."""
    collection.create_index([(name, 1) for name in KEY_FIELDS], unique=True, name="progress_key")


def _upsert(collection: MongoCollection, key: dict[str, str], update: dict[str, Any]) -> dict[str, Any]:
    """Apply ``update`` to the document at ``key``, creating it if needed; return it afterwards."""
    doc = collection.find_one_and_update(key, update, return_document=RETURN_AFTER)
    if doc is not None:
        return doc
    # First report for this tutorial. find_one_and_update(upsert=True) would save a round trip,
    # but nx-27017 0.8.1 drops $setOnInsert and $addToSet on that path; update_one does not.
    try:
        collection.update_one(key, update, upsert=True)
    except Exception as exc:
        if getattr(exc, "code", None) != DUPLICATE_KEY:
            raise
        # Another tab inserted it first (unique index); the update is idempotent, so apply it.
        collection.update_one(key, update)
    return collection.find_one(key)


def _conditional(collection: MongoCollection, update: Update, doc: dict[str, Any]) -> dict[str, Any]:
    filter_, change = update
    return collection.find_one_and_update(filter_, change, return_document=RETURN_AFTER) or doc


def _below(stored: Any, order: str) -> bool:
    """Whether a stored order (None if absent) may still be below ``order``: only then can a
    "newer than stored" update match, since stored orders only rise."""
    return not isinstance(stored, str) or stored < order


def _housekeeping(collection: MongoCollection, doc: dict[str, Any]) -> dict[str, Any]:
    for update in housekeeping_updates(doc):
        doc = _conditional(collection, update, doc)
    return doc


def apply_report_to_collection(collection: MongoCollection, report: Report | Mapping[str, Any]) -> dict[str, Any]:
    """Apply a report atomically and idempotently; return the resulting state (as ``from_doc``).

    Runs the ``report_updates`` in order. A conditional update whose filter cannot match the
    document we just read is skipped to save a round trip; that is only an optimisation, the
    filters themselves are what keep concurrent and retried reports correct.
    """
    report = validate_report(report)
    (key, upsert), first_watched, resume, completion = report_updates(report)
    doc = _upsert(collection, key, upsert)
    if parse_time(doc.get("first_watched_at")) is None:
        doc = _conditional(collection, first_watched, doc)
    if _below(doc.get("report_order"), report_order(report.at, report.report_id)):
        doc = _conditional(collection, resume, doc)
    if _auto_completes(from_doc(doc), report.total_minutes):
        doc = _conditional(collection, completion, doc)
    return from_doc(_housekeeping(collection, doc))


def apply_mark_to_collection(collection: MongoCollection, mark: Mark | Mapping[str, Any]) -> dict[str, Any]:
    """Apply a manual mark atomically and idempotently; return the resulting state."""
    mark = validate_mark(mark)
    (key, upsert), *decisions = mark_updates(mark)
    doc = _upsert(collection, key, upsert)
    if _below(doc.get("mark_order"), mark_order(mark.at, mark.completed)):
        for filter_, change in decisions:
            if "completed_at" in change["$set"] and "completed_at" in doc:
                continue  # completed_at is never removed, so the variant that sets it cannot match
            changed = collection.find_one_and_update(filter_, change, return_document=RETURN_AFTER)
            if changed is not None:
                doc = changed
                break  # this mark is stored now; the remaining variant would match nothing
    return from_doc(doc)


def course_progress_from_collection(
    collection: MongoCollection, username: str, foss: str, language: str, titles: Iterable[str]
) -> dict[str, Any]:
    """``course_progress`` for one user's course, reading their documents from ``collection``."""
    docs = collection.find(course_filter(username, foss, language), {"_id": 0})
    return course_progress(titles, docs, foss=foss, language=language)
