"""pipeline.progress: the tutorial/video progress rules, pure and on a real MongoDB-wire server.

The pure functions are tested rule by rule. The MongoDB functions run against nx-27017
started by a module fixture here (or the server at EVENTLOG_MONGO_URL, in a throwaway
database) and are checked against the pure functions step by step.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from typing import Any

import pymongo
import pytest

from pipeline.progress import (
    COLLECTION,
    MAX_VIDEO_LENGTH,
    InvalidReport,
    Report,
    apply_mark,
    apply_mark_to_collection,
    apply_report,
    apply_report_to_collection,
    course_progress,
    course_progress_from_collection,
    ensure_indexes,
    format_time,
    from_doc,
    housekeeping_updates,
    mark_updates,
    minutes_needed,
    parse_time,
    percent_watched,
    report_order,
    report_updates,
    resume_position_for,
    summary,
    total_minutes,
    validate_mark,
    validate_report,
)
from tests.helpers.mongo import private_database

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
_ids = count()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def report(minutes: list[int] | tuple[int, ...] = (), *, position: float | None = None, when: float = 0,
           video_length: float = 600, visit: str = "v1", report_id: str | None = None,
           language: str = "English", tutorial: str = "Intro", username: str = "alice",
           foss: str = "Python") -> dict[str, Any]:
    """A raw player report; by default the position is the start of the last minute played."""
    if position is None:
        position = (max(minutes) * 60 + 30) if minutes else 0
    return {
        "username": username, "foss": foss, "language": language, "tutorial": tutorial,
        "video_length": video_length, "position": position, "minutes": list(minutes),
        "visit_id": visit, "report_id": report_id or f"r{next(_ids)}", "at": at(when),
    }


def mark(completed: bool, when: float = 0, *, tutorial: str = "Intro", language: str = "English",
         username: str = "alice", foss: str = "Python") -> dict[str, Any]:
    return {"username": username, "foss": foss, "language": language, "tutorial": tutorial,
            "completed": completed, "at": at(when)}


def play(state: dict[str, Any] | None, reports: list[dict[str, Any]]) -> dict[str, Any]:
    for item in reports:
        state = apply_report(state, item)
    assert state is not None
    return state


def watch_minutes(minutes: range | list[int], video_length: float = 600, start: float = 0,
                  **kw: Any) -> list[dict[str, Any]]:
    return [report([m], when=start + i, video_length=video_length, **kw) for i, m in enumerate(minutes)]


# ------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize(("video_length", "expected"), [(1, 1), (59.9, 1), (60, 1), (60.5, 2), (61, 2),
                                                        (299.5, 5), (600, 10), (MAX_VIDEO_LENGTH, 360)])
def test_total_minutes_counts_a_partial_last_minute(video_length: float, expected: int) -> None:
    assert total_minutes(video_length) == expected


@pytest.mark.parametrize(("total", "needed"), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (7, 6), (10, 8),
                                               (35, 28), (360, 288)])
def test_minutes_needed_is_ceil_of_80_percent(total: int, needed: int) -> None:
    assert minutes_needed(total) == needed


def test_minutes_needed_never_undercuts_80_percent_and_is_minimal() -> None:
    # Exact, no floats: needed/total >= 4/5 and (needed-1)/total < 4/5 for every video length.
    for total in range(1, 361):
        needed = minutes_needed(total)
        assert 5 * needed >= 4 * total > 5 * (needed - 1)


@pytest.mark.parametrize(("position", "total", "expected"), [(0, 10, 0), (59.9, 10, 0), (60, 10, 60),
                                                             (125, 10, 120), (600, 10, 540), (601.5, 10, 540),
                                                             (30, 1, 0)])
def test_resume_position_is_start_of_minute_clamped_to_last(position: float, total: int, expected: int) -> None:
    assert resume_position_for(position, total) == expected


def test_time_format_is_fixed_width_utc_millis_and_round_trips() -> None:
    local = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(local) == "2024-05-01T10:00:00.123Z"
    assert parse_time(format_time(local)) == datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert format_time(datetime(2024, 5, 1, 10, 0)) == "2024-05-01T10:00:00.000Z"  # naive means UTC
    assert parse_time("2024-05-01 10:00:00") == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)  # nx-27017's form
    assert parse_time(None) is None
    times = [T0 + timedelta(milliseconds=ms) for ms in (0, 1, 999, 1000, 59_999, 86_400_000)]
    assert sorted(times, key=format_time) == times  # string order == time order


# ------------------------------------------------------------------ watching


def test_first_report_creates_progress() -> None:
    state = apply_report(None, report([0], when=5))
    assert state["username"] == "alice" and state["tutorial"] == "Intro"
    assert state["video_length"] == 600 and state["total_minutes"] == 10
    assert state["minutes_watched"] == [0]
    assert state["resume_position"] == 0
    assert state["first_watched_at"] == state["last_report_at"] == at(5)
    assert state["visits"] == 1 and state["visit_ids"] == ["v1"]
    assert state["completed"] is False and state["completed_at"] is None
    assert state["manual"] is False and state["marked_at"] is None
    assert percent_watched(state) == 10


def test_watching_straight_through_records_minutes_and_resume() -> None:
    state = play(None, watch_minutes(range(5)))
    assert state["minutes_watched"] == [0, 1, 2, 3, 4]
    assert state["resume_position"] == 240
    assert state["first_watched_at"] == at(0) and state["last_report_at"] == at(4)
    assert percent_watched(state) == 50


def test_skipping_ahead_counts_only_minutes_played() -> None:
    state = play(None, [report([0], when=0), report([1], when=1), report([], position=420, when=2),
                        report([7], when=3)])
    assert state["minutes_watched"] == [0, 1, 7]
    assert state["resume_position"] == 420
    assert percent_watched(state) == 30


def test_seeking_back_and_rewatching_does_not_count_twice() -> None:
    state = play(None, watch_minutes(range(4)))
    state = play(state, [report([], position=30, when=10), report([0], when=11), report([1], when=12)])
    assert state["minutes_watched"] == [0, 1, 2, 3]
    assert state["resume_position"] == 60  # moves back with the viewer
    assert percent_watched(state) == 40


def test_fast_forward_reports_several_minutes_at_once() -> None:
    state = play(None, [report([0, 1], position=125, when=0), report([2, 3, 4], position=299, when=1)])
    assert state["minutes_watched"] == [0, 1, 2, 3, 4]
    assert state["resume_position"] == 240


def test_minutes_arrive_deduplicated_and_sorted() -> None:
    state = apply_report(None, report([3, 1, 3, 2], position=200))
    assert state["minutes_watched"] == [1, 2, 3]


def test_seeking_to_the_end_does_not_complete() -> None:
    state = play(None, [report([0], when=0), report([], position=600, when=1), report([], position=600, when=2)])
    assert state["minutes_watched"] == [0]
    assert state["completed"] is False
    assert state["resume_position"] == 540  # start of the last minute, not past the end
    assert percent_watched(state) == 10


@pytest.mark.parametrize("minutes_long", [1, 4, 5, 7, 10])
def test_80_percent_rule_at_several_lengths(minutes_long: int) -> None:
    video_length = minutes_long * 60 - 10  # a partial last minute still counts as a minute
    needed = minutes_needed(minutes_long)
    almost = play(None, watch_minutes(range(needed - 1), video_length=video_length)) if needed > 1 else None
    if almost is not None:
        assert almost["completed"] is False
    done = apply_report(almost, report([needed - 1], when=100, video_length=video_length,
                                       position=min((needed - 1) * 60 + 5, video_length)))
    assert done["completed"] is True and done["completed_at"] == at(100)
    assert done["manual"] is False


def test_80_percent_in_any_order_of_minutes() -> None:
    state = play(None, [report([m], when=i) for i, m in enumerate([9, 0, 5, 3, 7, 1, 2])])
    assert state["completed"] is False  # 7 of 10
    state = apply_report(state, report([4], when=20))
    assert state["completed"] is True and state["completed_at"] == at(20)


def test_completed_at_is_set_once() -> None:
    state = play(None, watch_minutes(range(8)))
    assert state["completed_at"] == at(7)
    later = play(state, watch_minutes(range(10), start=1000))
    assert later["completed"] is True and later["completed_at"] == at(7)
    assert percent_watched(later) == 100


def test_percent_watched_rounds_half_up_and_keeps_100_for_all() -> None:
    assert percent_watched(None) == 0
    assert percent_watched(apply_report(None, report([0], video_length=8 * 60))) == 13  # 12.5 -> 13
    assert percent_watched(apply_report(None, report([0], video_length=3 * 60))) == 33
    assert percent_watched(play(None, watch_minutes(range(2), video_length=3 * 60))) == 67
    almost = play(None, [report(list(range(i, min(i + 10, 199))), when=i, video_length=200 * 60)
                         for i in range(0, 199, 10)])
    assert len(almost["minutes_watched"]) == 199
    assert percent_watched(almost) == 99  # 99.5 would round to 100; 100 means every minute


# ------------------------------------------------------------------ visits, retries, ordering


def test_visits_count_watch_page_visits_not_reports() -> None:
    state = play(None, watch_minutes(range(3), visit="visit-a"))
    assert state["visits"] == 1
    state = play(state, watch_minutes(range(3, 5), start=100, visit="visit-b"))
    state = apply_report(state, report([5], when=200, visit="visit-a"))
    assert state["visits"] == 2 and state["visit_ids"] == ["visit-a", "visit-b"]


def test_retried_report_changes_nothing() -> None:
    first = report([2], when=10, visit="visit-a")
    state = apply_report(play(None, watch_minutes(range(2))), first)
    assert apply_report(state, first) == state
    assert apply_report(apply_report(state, first), first) == state


def test_late_retry_of_an_older_report_does_not_move_resume_back() -> None:
    older, newer = report([1], when=1), report([], position=450, when=2)
    state = play(None, [report([0], when=0), older, newer])
    assert state["resume_position"] == 420
    retried = apply_report(state, older)
    assert retried["resume_position"] == 420 and retried["last_report_at"] == at(2)
    assert retried == state


def test_reports_out_of_order_end_like_in_order() -> None:
    reports = [report([m], when=m, visit=f"v{m % 2}") for m in range(6)]
    in_order = play(None, reports)
    shuffled = reports[:]
    random.Random(7).shuffle(shuffled)
    other = play(None, shuffled)
    for name in ("minutes_watched", "resume_position", "last_report_at", "visits", "last_report_id"):
        assert other[name] == in_order[name]


def test_reports_made_at_the_same_instant_end_the_same_in_any_order() -> None:
    # Equal times need a winner of their own, or the last to arrive would win and two servers (or
    # two interleavings) could disagree: the larger report_id decides.
    a = report([1], position=90, when=5, report_id="r-a")
    b = report([2], position=150, when=5, report_id="r-b")
    for state in (play(None, [a, b]), play(None, [b, a])):
        assert (state["resume_position"], state["last_report_id"], state["last_report_at"]) == (120, "r-b", at(5))
    assert report_order(at(5), "r-b") > report_order(at(5), "r-a") > report_order(at(4.999), "r-z")


def test_report_for_another_key_is_rejected() -> None:
    english = apply_report(None, report([0]))
    with pytest.raises(InvalidReport, match="different"):
        apply_report(english, report([1], language="Hindi"))


def test_languages_are_separate_progress() -> None:
    english = play(None, watch_minutes(range(8)))
    hindi = apply_report(None, report([0], language="Hindi"))
    assert english["completed"] is True and hindi["completed"] is False
    titles = ["Intro", "Loops"]
    assert course_progress(titles, [english, hindi], foss="Python", language="Hindi")["completed"] == 0
    assert course_progress(titles, [english, hindi], foss="Python", language="English")["completed"] == 1


# ------------------------------------------------------------------ manual marks


def test_mark_complete_before_watching() -> None:
    state = apply_mark(None, mark(True, when=3))
    assert state["completed"] is True and state["manual"] is True
    assert state["completed_at"] == state["marked_at"] == at(3)
    assert state["minutes_watched"] == [] and state["first_watched_at"] is None
    assert percent_watched(state) == 0
    watched = apply_report(state, report([0], when=5))
    assert watched["first_watched_at"] == at(5) and watched["completed"] is True


def test_mark_incomplete_overrides_the_80_percent_rule_until_changed() -> None:
    state = apply_mark(None, mark(False, when=0))
    assert state["completed"] is False and state["manual"] is True
    state = play(state, watch_minutes(range(10), start=10))
    assert state["completed"] is False and state["completed_at"] is None  # manual mark still wins
    assert percent_watched(state) == 100
    state = apply_mark(state, mark(True, when=100))
    assert state["completed"] is True and state["completed_at"] == at(100)


def test_mark_incomplete_after_auto_completion_keeps_first_completed_at() -> None:
    state = play(None, watch_minutes(range(8)))
    assert state["completed_at"] == at(7)
    state = apply_mark(state, mark(False, when=50))
    assert state["completed"] is False and state["manual"] is True and state["marked_at"] == at(50)
    assert state["completed_at"] == at(7)  # the first time it became complete
    state = apply_report(state, report([9], when=60))
    assert state["completed"] is False
    state = apply_mark(state, mark(True, when=70))
    assert state["completed"] is True and state["completed_at"] == at(7)


def test_mark_complete_then_incomplete_then_complete() -> None:
    state = apply_mark(None, mark(True, when=1))
    state = apply_mark(state, mark(False, when=2))
    assert state["completed"] is False and state["completed_at"] == at(1)
    state = apply_mark(state, mark(True, when=3))
    assert state["completed"] is True and state["completed_at"] == at(1) and state["marked_at"] == at(3)


def test_an_older_mark_is_ignored_and_marks_are_idempotent() -> None:
    state = apply_mark(apply_mark(None, mark(True, when=10)), mark(False, when=5))
    assert state["completed"] is True and state["marked_at"] == at(10)
    assert apply_mark(state, mark(True, when=10)) == state


def test_marks_made_at_the_same_instant_end_the_same_in_any_order() -> None:
    done, undone = mark(True, when=10), mark(False, when=10)
    for state in (apply_mark(apply_mark(None, done), undone), apply_mark(apply_mark(None, undone), done)):
        assert state["completed"] is True and state["marked_at"] == at(10)


# ------------------------------------------------------------------ course progress

TITLES = [f"Tutorial {i}" for i in range(1, 9)]


def done(title: str, when: float) -> dict[str, Any]:
    return play(None, watch_minutes(range(8), start=when, tutorial=title))


def test_course_percent_rounds_half_up() -> None:
    result = course_progress(TITLES, [done("Tutorial 3", 0)], foss="Python", language="English")
    assert (result["completed"], result["total"], result["percent"]) == (1, 8, 13)
    assert [row["completed"] for row in result["tutorials"]] == [False, False, True] + [False] * 5


def test_course_rows_carry_status_percent_and_resume() -> None:
    partial = play(None, watch_minutes(range(3), tutorial="Tutorial 2"))
    result = course_progress(TITLES, [partial, done("Tutorial 1", 100)])
    row1, row2, row3 = result["tutorials"][:3]
    assert row1["tutorial"] == "Tutorial 1" and row1["completed"] is True and row1["percent_watched"] == 80
    assert row2 == {"tutorial": "Tutorial 2", "started": True, "completed": False, "manual": False,
                    "percent_watched": 30, "resume_position": 120, "visits": 1, "last_report_at": at(2),
                    "completed_at": None}
    assert row3 == {"tutorial": "Tutorial 3", **summary(None)}


def test_continue_with_most_recently_reported_incomplete() -> None:
    docs = [play(None, watch_minutes(range(2), start=50, tutorial="Tutorial 5")),
            play(None, watch_minutes(range(2), start=10, tutorial="Tutorial 2")),
            done("Tutorial 6", 500)]  # most recent of all, but complete
    result = course_progress(TITLES, docs)
    assert result["continue_with"] == "Tutorial 5"
    assert result["resume_position"] == 60


def test_continue_with_first_incomplete_when_none_reported() -> None:
    docs = [done("Tutorial 1", 0), apply_mark(None, mark(True, tutorial="Tutorial 2")),
            apply_mark(None, mark(False, tutorial="Tutorial 4"))]
    result = course_progress(TITLES, docs)
    assert result["completed"] == 2 and result["continue_with"] == "Tutorial 3" and result["resume_position"] == 0


def test_continue_with_none_when_all_complete() -> None:
    result = course_progress(TITLES, [done(title, i * 100) for i, title in enumerate(TITLES)])
    assert (result["completed"], result["percent"], result["continue_with"]) == (8, 100, None)


def test_course_ignores_other_courses_unknown_titles_and_duplicates() -> None:
    docs = [done("Tutorial 1", 0), done("Not in course", 10),
            play(None, watch_minutes(range(8), tutorial="Tutorial 2", foss="Java"))]
    result = course_progress([*TITLES, "Tutorial 1"], docs, foss="Python", language="English")
    assert result["total"] == 8 and result["completed"] == 1
    assert course_progress([], docs) == {"total": 0, "completed": 0, "percent": 0, "tutorials": [],
                                         "continue_with": None, "resume_position": 0}


def test_course_progress_reads_stored_documents() -> None:
    stored = {"_id": "x", "username": "alice", "foss": "Python", "language": "English", "tutorial": "Tutorial 1",
              "video_length": 600, "total_minutes": 10, "minutes_watched": [3, 0, 1], "visit_ids": ["a", "b"],
              "visits": 1, "completed": 1, "manual": 0, "resume_position": 180,
              "last_report_at": "2024-05-01T10:00:02.000Z", "completed_at": "2024-05-01T10:00:02.000Z"}
    state = from_doc(stored)
    assert state["minutes_watched"] == [0, 1, 3] and state["visits"] == 2
    assert state["completed"] is True and state["manual"] is False
    assert state["last_report_at"] == at(2) and state["marked_at"] is None
    assert course_progress(TITLES, [stored])["completed"] == 1


# ------------------------------------------------------------------ validation


def bad(**changes: Any) -> dict[str, Any]:
    raw = report([0, 1], position=90)
    for name, value in changes.items():
        if value is ...:
            del raw[name]
        else:
            raw[name] = value
    return raw


@pytest.mark.parametrize(("raw", "message"), [
    (bad(username=""), "username must not be empty"),
    (bad(foss="   "), "foss must not be empty"),
    (bad(tutorial="x" * 201), "tutorial is longer than 200"),
    (bad(language=None), "language must be a string"),
    (bad(username=...), "username is missing"),
    (bad(position=-1), "position must not be negative"),
    (bad(position=602.5), "beyond the end"),
    (bad(position="12"), "position must be a number"),
    (bad(position=True), "position must be a number"),
    (bad(position=float("nan")), "position must be finite"),
    (bad(video_length=0), "video_length must be in"),
    (bad(video_length=-5), "video_length must be in"),
    (bad(video_length=MAX_VIDEO_LENGTH + 1), "video_length must be in"),
    (bad(video_length=float("inf")), "video_length must be finite"),
    (bad(minutes=[10]), "minute 10 is outside"),
    (bad(minutes=[-1]), "minute -1 is outside"),
    (bad(minutes=list(range(10)) + [0]), "too many minutes"),
    (bad(minutes=[1.0]), "minutes must be integers"),
    (bad(minutes=[True]), "minutes must be integers"),
    (bad(minutes="0,1"), "minutes must be a list"),
    (bad(minutes=...), "minutes is missing"),
    (bad(visit_id=""), "visit_id must not be empty"),
    (bad(report_id=7), "report_id must be a string"),
    (bad(report_id="r" * 129), "report_id is longer than 128"),
    (bad(at="yesterday"), "not an ISO-8601 time"),
    (bad(at=1714557600), "at must be a datetime"),
    (bad(at=datetime(1969, 12, 31, tzinfo=UTC)), "at is out of range"),
    (["not", "a", "mapping"], "must be a mapping"),
])
def test_invalid_reports_are_rejected(raw: Any, message: str) -> None:
    with pytest.raises(InvalidReport, match=message):
        validate_report(raw)
    with pytest.raises(ValueError):  # InvalidReport is a ValueError, callers may catch either
        apply_report(None, raw)


def test_edges_that_are_valid() -> None:
    assert validate_report(bad(position=602)).position == 602  # 2 s past the end is tolerated
    assert validate_report(bad(video_length=MAX_VIDEO_LENGTH, minutes=[359], position=0)).total_minutes == 360
    assert validate_report(bad(minutes=list(range(10)))).minutes == tuple(range(10))
    parsed = validate_report(bad(at="2024-05-01T12:00:00.123456+02:00"))
    assert parsed.at == datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)  # UTC, milliseconds
    assert isinstance(parsed, Report) and validate_report(parsed) is parsed


@pytest.mark.parametrize(("raw", "message"), [
    ({**mark(True), "completed": "yes"}, "completed must be true or false"),
    ({**mark(True), "completed": 1}, "completed must be true or false"),
    ({**mark(True), "tutorial": ""}, "tutorial must not be empty"),
    ({k: v for k, v in mark(True).items() if k != "at"}, "at is missing"),
    ("complete", "must be a mapping"),
])
def test_invalid_marks_are_rejected(raw: Any, message: str) -> None:
    with pytest.raises(InvalidReport, match=message):
        validate_mark(raw)


# ------------------------------------------------------------------ update builders

ALLOWED_OPERATORS = {"$set", "$setOnInsert", "$addToSet", "$max", "$inc"}


def operators(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {key for key in value if key.startswith("$")}
        return found.union(*(operators(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(operators(v) for v in value))
    return set()


def test_update_builders_use_only_portable_operators() -> None:
    updates = [*report_updates(report([0, 1], position=90)), *mark_updates(mark(True)), *mark_updates(mark(False)),
               *housekeeping_updates({**from_doc(apply_report(None, report([2]))), "minutes_watched": [2, 1],
                                      "visits": 0})]
    for filter_, update in updates:
        assert set(update) <= ALLOWED_OPERATORS
        assert "$expr" not in operators(filter_) and "$where" not in operators(filter_)
    item = report([0, 1], position=90, report_id="r-1")
    (first_filter, first_update), _, (resume_filter, resume_update), _ = report_updates(item)
    assert first_filter == {"username": "alice", "foss": "Python", "language": "English", "tutorial": "Intro"}
    assert first_update["$addToSet"]["minutes_watched"] == {"$each": [0, 1]}
    # The newest report's fields are written together, by the one update that decides it is newest.
    order = report_order(at(0), "r-1")
    assert resume_update == {"$set": {"report_order": order, "last_report_at": format_time(at(0)),
                                      "resume_position": 60, "last_report_id": "r-1"}}
    assert {"report_order": {"$lt": order}} in resume_filter["$and"][0]["$or"]
    assert "$or" not in resume_filter  # nx-27017 mistranslates a top-level $or beside other fields


def test_housekeeping_is_needed_only_when_out_of_sync() -> None:
    state = apply_report(None, report([2]))
    assert housekeeping_updates(state) == []
    stale = {**state, "minutes_watched": [2, 0], "visit_ids": ["a", "b"], "visits": 1}
    (visits_filter, visits_update), (minutes_filter, minutes_update) = housekeeping_updates(stale)
    assert visits_filter["visit_ids"] == {"$size": 2} and visits_update == {"$set": {"visits": 2}}
    assert minutes_filter["minutes_watched"] == {"$size": 2} and minutes_update == {"$set": {"minutes_watched": [0, 2]}}


class RacingCollection:
    """Pretends another tab inserted the document between our find and our upsert."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def find_one_and_update(self, filter_: dict, update: dict, **kw: Any) -> None:
        return None

    def update_one(self, filter_: dict, update: dict, upsert: bool = False) -> None:
        self.calls.append(("update_one", upsert))
        if upsert:
            error = RuntimeError("E11000 duplicate key")
            error.code = 11000  # type: ignore[attr-defined]
            raise error

    def find_one(self, filter_: dict) -> dict:
        return from_doc(apply_report(None, report([0])))


def test_duplicate_key_on_first_upsert_falls_back_to_update() -> None:
    racing = RacingCollection()
    apply_report_to_collection(racing, report([0]))
    assert racing.calls[:2] == [("update_one", True), ("update_one", False)]


# ------------------------------------------------------------------ on a MongoDB-wire server


@pytest.fixture(scope="module")
def progress_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pymongo.database.Database]:
    with private_database(tmp_path_factory.mktemp("nx-progress"), "eventlog_progress_test") as db:
        yield db


@pytest.fixture
def progress(progress_db: pymongo.database.Database) -> pymongo.collection.Collection:
    collection = progress_db[f"{COLLECTION}_{uuid.uuid4().hex[:8]}"]
    ensure_indexes(collection)
    return collection


def stored(collection: pymongo.collection.Collection, **key: str) -> dict[str, Any]:
    key = {"username": "alice", "foss": "Python", "language": "English", "tutorial": "Intro", **key}
    docs = list(collection.find(key))
    assert len(docs) == 1
    return docs[0]


def test_server_matches_pure_functions_step_by_step(progress: pymongo.collection.Collection) -> None:
    rng = random.Random(2024)
    expected: dict[tuple[str, str], dict[str, Any] | None] = {}
    history: list[dict[str, Any]] = []
    for step in range(70):
        tutorial, language = rng.choice(["Intro", "Loops"]), rng.choice(["English", "Hindi"])
        roll = rng.random()
        if roll < 0.1:
            item = mark(rng.random() < 0.5, when=step + rng.choice([0, -30]), tutorial=tutorial, language=language)
            pure = apply_mark(expected.get((tutorial, language)), item)
            result = apply_mark_to_collection(progress, item)
        else:
            if roll < 0.2 and history:
                item = rng.choice(history)  # a retry, possibly late and out of order
                tutorial, language = item["tutorial"], item["language"]
            else:
                minutes = rng.sample(range(5), rng.choice([0, 1, 1, 2]))
                item = report(minutes, position=rng.uniform(0, 300), when=step + rng.choice([0, 0, -20]),
                              video_length=300, visit=rng.choice(["v1", "v2", "v3"]), tutorial=tutorial,
                              language=language)
                history.append(item)
            pure = apply_report(expected.get((tutorial, language)), item)
            result = apply_report_to_collection(progress, item)
        expected[(tutorial, language)] = pure
        assert result == pure, f"step {step}"
        doc = stored(progress, tutorial=tutorial, language=language)
        assert from_doc(doc) == pure, f"step {step}"
        assert doc["visits"] == len(doc["visit_ids"]) and doc["minutes_watched"] == sorted(doc["minutes_watched"])
    assert progress.count_documents({}) == len(expected)
    assert any(state["completed"] for state in expected.values() if state)


def test_stored_document_shape(progress: pymongo.collection.Collection) -> None:
    apply_report_to_collection(progress, report([2], when=1, visit="a"))
    apply_report_to_collection(progress, report([0], when=2, visit="b", position=10))
    doc = stored(progress)
    assert doc["minutes_watched"] == [0, 2] and doc["visit_ids"] == ["a", "b"] and doc["visits"] == 2
    assert doc["resume_position"] == 0 and doc["total_minutes"] == 10 and doc["video_length"] == 600
    assert doc["first_watched_at"] == "2024-05-01T10:00:01.000Z"
    assert doc["last_report_at"] == "2024-05-01T10:00:02.000Z"
    assert "completed_at" not in doc and "marked_at" not in doc
    assert not doc["completed"] and not doc["manual"]


TABS, ROUNDS = 6, 40


def test_concurrent_tabs_never_lose_minutes(progress: pymongo.collection.Collection) -> None:
    # Every tab sends one report per round and waits for the others, so each round is a fresh race
    # between TABS writers, and all reports fall in the same wall-clock second, one millisecond
    # apart: a guard that compares times at second precision (nx-27017 does) cannot tell them apart.
    # After every round the newest report's position must have won, whatever the interleaving.
    errors: list[BaseException] = []
    wrong: list[tuple[int, Any, Any]] = []
    rounds = iter(range(ROUNDS))

    def check_round() -> None:  # the Barrier runs this in one thread once all tabs are through
        n = next(rounds) * TABS + TABS - 1  # the newest report of this round
        state = from_doc(stored(progress))
        if (state["last_report_at"], state["resume_position"]) != (at(n / 1000), n % 60 * 60):
            wrong.append((n, state["last_report_at"], state["resume_position"]))

    barrier = threading.Barrier(TABS, action=check_round, timeout=60)

    def tab(parity: int) -> None:
        try:
            for i in range(ROUNDS):
                n = i * TABS + parity
                apply_report_to_collection(progress, report([n % 60], when=n / 1000, video_length=3600,
                                                            visit=f"tab{parity}"))
                barrier.wait()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=tab, args=(parity,)) for parity in range(TABS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert not wrong, f"{len(wrong)} of {ROUNDS} rounds lost the newest report's position: {wrong[:3]}"
    doc = stored(progress)
    assert doc["minutes_watched"] == list(range(60))
    assert doc["visits"] == TABS
    state = from_doc(doc)
    assert state["completed"] is True and state["completed_at"] is not None
    assert state["last_report_at"] == at((TABS * ROUNDS - 1) / 1000) and state["resume_position"] == 59 * 60


def interleavings(first: list[Any], second: list[Any]) -> Iterator[list[Any]]:
    """Every merge of two sequences that keeps the order within each."""
    if not first or not second:
        yield [*first, *second]
        return
    for rest in interleavings(first[1:], second):
        yield [first[0], *rest]
    for rest in interleavings(first, second[1:]):
        yield [second[0], *rest]


def run_blindly(collection: pymongo.collection.Collection, steps: list[tuple[int, tuple[dict, dict]]]) -> None:
    # Each writer's first update is its upsert; the rest are conditional and must decide alone.
    for index, (filter_, update) in steps:
        collection.update_one(filter_, update, upsert=index == 0)


@pytest.mark.parametrize(("older", "newer"), [
    (0.0, 0.001),  # one millisecond apart, in the same second
    (0.998, 0.999),
    (5.0, 5.0),  # the same time: the larger report_id decides, on every server and in every order
])
def test_any_interleaving_of_two_reports_ends_with_the_newest(progress: pymongo.collection.Collection,
                                                              older: float, newer: float) -> None:
    ends = set()
    for case, order in enumerate(interleavings(["a"] * 4, ["b"] * 4)):
        tutorial = f"Race {case}"
        a = report([1], position=90, when=older, report_id="r-a", tutorial=tutorial)
        b = report([2], position=150, when=newer, report_id="r-b", tutorial=tutorial)
        pending = {"a": list(enumerate(report_updates(a))), "b": list(enumerate(report_updates(b)))}
        run_blindly(progress, [pending[writer].pop(0) for writer in order])
        assert len(report_updates(a)) == 4, "the interleavings above assume four updates per report"
        state = from_doc(stored(progress, tutorial=tutorial))
        expected = apply_report(apply_report(None, a), b)
        assert expected == {**apply_report(apply_report(None, b), a), "first_watched_at": expected["first_watched_at"]}
        fields = ("resume_position", "last_report_at", "last_report_id", "minutes_watched", "visit_ids")
        assert {name: state[name] for name in fields} == {name: expected[name] for name in fields}, order
        ends.add((state["resume_position"], state["last_report_id"]))
    assert ends == {(120, "r-b")}


def test_any_interleaving_of_two_marks_ends_with_the_newest(progress: pymongo.collection.Collection) -> None:
    for first, second in [(False, True), (True, False)]:
        older, newer = mark(first, when=0.25), mark(second, when=0.75)  # the same second
        for case, order in enumerate(interleavings(["a"] * len(mark_updates(older)),
                                                   ["b"] * len(mark_updates(newer)))):
            tutorial = f"Marks {first} {case}"
            older["tutorial"] = newer["tutorial"] = tutorial
            pending = {"a": list(enumerate(mark_updates(older))), "b": list(enumerate(mark_updates(newer)))}
            run_blindly(progress, [pending[writer].pop(0) for writer in order])
            state = from_doc(stored(progress, tutorial=tutorial))
            assert (state["completed"], state["manual"], state["marked_at"]) == (second, True, at(0.75)), order


def test_documents_written_before_the_order_fields_still_order_by_time(
        progress: pymongo.collection.Collection) -> None:
    # What the rules stored before report_order/mark_order existed: times only, unset ones absent.
    state = {**play(None, [report([1], when=10, report_id="old")]), "marked_at": at(10), "manual": True}
    progress.insert_one({name: format_time(value) if isinstance(value, datetime) else value
                         for name, value in state.items() if value is not None})
    assert "report_order" not in stored(progress)
    state = apply_report_to_collection(progress, report([2], when=5))  # older: keeps the position
    assert (state["resume_position"], state["last_report_id"], state["minutes_watched"]) == (60, "old", [1, 2])
    state = apply_report_to_collection(progress, report([3], when=20, report_id="new"))
    assert (state["resume_position"], state["last_report_id"]) == (180, "new")
    assert stored(progress)["report_order"] == report_order(at(20), "new")
    assert apply_mark_to_collection(progress, mark(True, when=5))["marked_at"] == at(10)  # older mark
    state = apply_mark_to_collection(progress, mark(True, when=30))
    assert state["completed"] is True and state["marked_at"] == at(30) and state["completed_at"] == at(30)


def test_marks_on_server_in_the_same_second(progress: pymongo.collection.Collection) -> None:
    apply_report_to_collection(progress, report([0], when=0))
    state = apply_mark_to_collection(progress, mark(True, when=1.5))
    assert state["completed"] is True and state["completed_at"] == at(1.5)
    state = apply_mark_to_collection(progress, mark(False, when=1.2))  # older, same second
    assert state["completed"] is True and state["marked_at"] == at(1.5)
    state = apply_mark_to_collection(progress, mark(False, when=1.7))
    assert state["completed"] is False and state["completed_at"] == at(1.5)
    assert apply_mark_to_collection(progress, mark(False, when=1.7)) == state  # a retry
    assert from_doc(stored(progress)) == state


def test_retried_report_on_server_keeps_visits(progress: pymongo.collection.Collection) -> None:
    item = report([1], when=5, visit="visit-a")
    first = apply_report_to_collection(progress, item)
    again = apply_report_to_collection(progress, item)
    assert again == first and again["visits"] == 1
    assert stored(progress)["visits"] == 1


def test_manual_marks_on_server(progress: pymongo.collection.Collection) -> None:
    state = apply_mark_to_collection(progress, mark(False, when=0))
    assert state["manual"] is True and state["completed"] is False
    for i in range(10):
        state = apply_report_to_collection(progress, report([i], when=10 + i))
    assert state["completed"] is False and percent_watched(state) == 100
    state = apply_mark_to_collection(progress, mark(True, when=100))
    assert state["completed"] is True and state["completed_at"] == at(100)
    state = apply_mark_to_collection(progress, mark(False, when=50))  # older than the last mark
    assert state["completed"] is True and state["marked_at"] == at(100)
    assert from_doc(stored(progress)) == state


def test_course_progress_from_server(progress: pymongo.collection.Collection) -> None:
    for i in range(8):
        apply_report_to_collection(progress, report([i], when=i, tutorial="Tutorial 1"))
    apply_report_to_collection(progress, report([0, 1], position=100, when=50, tutorial="Tutorial 4"))
    apply_report_to_collection(progress, report([0], when=60, tutorial="Tutorial 4", language="Hindi"))
    result = course_progress_from_collection(progress, "alice", "Python", "English", TITLES)
    assert (result["completed"], result["percent"], result["continue_with"], result["resume_position"]) == (
        1, 13, "Tutorial 4", 60)


def test_update_lists_alone_are_correct_when_run_blindly(progress: pymongo.collection.Collection) -> None:
    # No skipping in Python: every filter must decide for itself (e.g. completion's $nor of $size),
    # and running a whole list twice must change nothing.
    def run(updates: list[tuple[dict, dict]]) -> None:
        for index, (filter_, update) in enumerate(updates):
            progress.update_one(filter_, update, upsert=index == 0)
        for filter_, update in housekeeping_updates(stored(progress)):
            progress.update_one(filter_, update)

    state = None
    items = [report([3], when=1), report([0, 1], when=0, position=100), mark(False, when=2), mark(True, when=3),
             mark(False, when=2.5),  # older than the last mark: ignored
             report([2], when=4), report([4, 5, 6, 7], when=5, position=480)]
    for item in items:
        builder, pure = (mark_updates, apply_mark) if "completed" in item else (report_updates, apply_report)
        state = pure(state, item)
        run(builder(item))
        run(builder(item))
        assert from_doc(stored(progress)) == state, item

    auto = {"tutorial": "Auto"}
    state = None
    for item in [report(list(range(i, i + 2)), when=i, tutorial="Auto") for i in range(0, 10, 2)]:
        state = apply_report(state, item)
        run(report_updates(item))
        assert from_doc(stored(progress, **auto)) == state
    assert state is not None and state["completed_at"] == at(6)  # 8 of 10 minutes after the 4th report
