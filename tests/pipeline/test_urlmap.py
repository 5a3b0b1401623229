"""pipeline.urlmap: URL path -> event_name."""

from __future__ import annotations

import re

import pytest

from pipeline.urlmap import EVENT_NAME_DICT, FALLBACK_EVENT_NAME, event_name_for, tutorial_from_path


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/", "event.home.view"),
        ("/watch/BASH/Basics-of-Shell-Scripting/English/", "event.video.watch"),
        ("/watch/Python/Getting-started/Hindi", "event.video.watch"),
        ("/tutorial-search/", "event.tutorial.search"),
        ("/tutorial-search", "event.tutorial.search"),
        ("/keyword-search/", "event.keyword.search"),
        ("/cdcontent/", "event.cdcontent.view"),
        ("/cdcontent", "event.cdcontent.view"),
        ("/cdcontent/download/", "event.cdcontent.download"),
        ("/cdcontent/ajax-fill-languages/", "event.cdcontent.download"),
        ("/news/some-story/", "event.news.view"),
        ("/accounts/login/", "event.account.login"),
        ("/accounts/logout/", "event.account.logout"),
        ("/accounts/register/", "event.account.register"),
        ("/accounts/profile/edit/", "event.account.view"),
        ("/eventlog/dashboard/", "event.dashboard.view"),
    ],
)
def test_known_paths(path: str, name: str) -> None:
    assert event_name_for(path) == name


@pytest.mark.parametrize(
    "path",
    [
        "/no/such/page/",
        "/watch/BASH/",  # too few segments
        "/watch/BASH/Tutorial/English/extra/",  # too many
        "/tutorial-search/results/",
        "//",
        "/home",
        "/WATCH/BASH/Basics/English/",  # patterns are case-sensitive
        "/prefix/watch/BASH/Basics/English/",  # anchored at the start
    ],
)
def test_unmatched_paths_fall_back(path: str) -> None:
    assert event_name_for(path) == FALLBACK_EVENT_NAME


def test_fallback_name_is_not_a_mapped_name() -> None:
    assert FALLBACK_EVENT_NAME == "event.other.view"
    assert FALLBACK_EVENT_NAME not in EVENT_NAME_DICT.values()


def test_every_pattern_compiles_and_is_anchored() -> None:
    for pattern in EVENT_NAME_DICT:
        re.compile(pattern)
        assert pattern.startswith("^/"), pattern


def test_first_match_wins() -> None:
    # "/accounts/login/" also matches the generic account pattern listed after it
    assert re.search(r"^/(accounts|profile)/", "/accounts/login/")
    assert event_name_for("/accounts/login/") == "event.account.login"


def test_tutorial_from_path() -> None:
    assert tutorial_from_path("/watch/BASH/Basics-of-Shell-Scripting/English/") == {
        "foss": "BASH",
        "tutorial": "Basics-of-Shell-Scripting",
        "language": "English",
    }
    assert tutorial_from_path("/watch/Python/Getting-started/Hindi") == {
        "foss": "Python",
        "tutorial": "Getting-started",
        "language": "Hindi",
    }


@pytest.mark.parametrize("path", ["/", "/tutorial-search/", "/watch/BASH/", "/cdcontent/", "/watch/a/b/c/d/"])
def test_tutorial_from_non_watch_path_is_none(path: str) -> None:
    assert tutorial_from_path(path) is None


def test_event_name_for_is_cached_and_stable() -> None:
    event_name_for.cache_clear()
    first = event_name_for("/watch/a/b/c/")
    second = event_name_for("/watch/a/b/c/")
    assert first == second == "event.video.watch"
    info = event_name_for.cache_info()
    assert info.hits >= 1 and info.misses >= 1
