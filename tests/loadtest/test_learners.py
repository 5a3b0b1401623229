"""loadtest.learners' own logic on fixed input: the reports player.js would send, the
watch page's player settings, and the check of what tutorial_progress_logs holds.
(That the demo traffic's reports are stored for real: tests/loadtest/test_traffic.py.)"""

from __future__ import annotations

import random

from loadtest.learners import (
    ProgressLog,
    missing_progress,
    playback_reports,
    read_player,
    total_minutes,
    viewing_plan,
)
from pipeline import progress


def test_reports_when_the_minute_changes_and_at_the_pause() -> None:
    assert playback_reports(0, 130, 185) == [(60.25, [0, 1]), (120.25, [1, 2]), (130, [2])]
    assert playback_reports(70, 100, 185) == [(100, [1])]  # within one minute: the pause only
    # To the end of a 185 s video (4 minutes: 0..3); the last minute is never beyond the video.
    reports = playback_reports(150, 185, 185)
    assert reports == [(180.25, [2, 3]), (185, [3])]
    assert playback_reports(0, 240, 240)[-1] == (240, [3])  # 240 s = 4 minutes: no minute 4


def test_every_report_is_valid_for_the_server() -> None:
    rng = random.Random(5)
    for _ in range(300):
        length = rng.choice([150, 185, 240, 356])
        for start, stop in viewing_plan(rng.randrange(0, length), length, rng):
            assert 0 <= start <= stop <= length
            for position, minutes in playback_reports(start, stop, length):
                progress.validate_report({"username": "u", "foss": "f", "language": "l", "tutorial": "t",
                                          "video_length": length, "position": position, "minutes": minutes,
                                          "visit_id": "v", "report_id": "r", "at": "2026-01-01T00:00:00Z"})


def test_a_whole_watch_reaches_the_80_percent_rule() -> None:
    length = 301
    watched = {m for _, minutes in playback_reports(0, length, length) for m in minutes}
    assert watched == set(range(total_minutes(length)))


def test_the_player_settings_come_from_the_watch_page() -> None:
    page = ('<video id="player" src="/v.webm" data-progress-url="/eventlog/progress/" '
            'data-mark-url="/eventlog/progress/mark/" data-csrf="abc&amp;123" data-user="learner1" '
            'data-resume="120"></video>')
    player = read_player(page)
    assert player is not None
    assert (player.progress_url, player.mark_url, player.csrf, player.resume) == (
        "/eventlog/progress/", "/eventlog/progress/mark/", "abc&123", 120)
    assert read_player('<video id="player" data-resume="0"></video>') is None  # anonymous: no progress


def test_missing_progress_names_what_is_not_stored() -> None:
    log = ProgressLog()
    key = ("learner1", "BASH", "English", "Loops in BASH")
    log.report(key, [0, 1], "visit-a")
    log.mark(key, True)
    doc = {"username": "learner1", "foss": "BASH", "language": "English", "tutorial": "Loops in BASH",
           "minutes_watched": [0, 1, 2], "visit_ids": ["visit-a", "older"], "manual": True, "completed": True}
    assert missing_progress(log, [doc]) == []
    assert missing_progress(log, []) == [f"{key}: no document", f"{key}: mark True"]
    assert missing_progress(log, [{**doc, "minutes_watched": [0]}]) == [f"{key}: minutes [1]"]
    assert missing_progress(log, [{**doc, "visit_ids": []}]) == [f"{key}: visits"]
    assert missing_progress(log, [{**doc, "manual": False}]) == [f"{key}: mark True"]
