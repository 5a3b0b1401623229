"""health/ answers from a per-process cache, computed by one thread at a time."""

from __future__ import annotations

import threading

from pipeline.config import load_settings
from tasks.health_cache import HealthCache

LONG = load_settings({"EVENTLOG_HEALTH_CACHE": "3600"})
NONE = load_settings({"EVENTLOG_HEALTH_CACHE": "0"})


class SlowCheck:
    """A health check that returns only when the test lets it, counting its runs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.runs = 0

    def __call__(self, s) -> tuple[bool, dict]:  # noqa: ANN001
        self.runs += 1
        self.started.set()
        self.release.wait(30)
        return True, {"status": "ok", "run": self.runs}


def in_threads(n: int, target) -> tuple[list[threading.Thread], list]:  # noqa: ANN001
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(target())) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, results


def test_within_the_period_the_figures_are_reused() -> None:
    check = SlowCheck()
    check.release.set()
    cache = HealthCache(check)
    assert cache.get(LONG) == cache.get(LONG) == (True, {"status": "ok", "run": 1})
    assert check.runs == 1


def test_after_the_period_or_with_other_settings_they_are_computed_again() -> None:
    check = SlowCheck()
    check.release.set()
    cache = HealthCache(check)
    cache.get(NONE)
    cache.get(NONE)
    assert check.runs == 2
    cache.get(LONG)
    assert check.runs == 3  # other settings, other figures


def test_many_first_callers_wait_for_one_check() -> None:
    check = SlowCheck()
    cache = HealthCache(check)
    threads, results = in_threads(20, lambda: cache.get(LONG))
    assert check.started.wait(10)
    check.release.set()
    for t in threads:
        t.join(30)
    assert check.runs == 1
    assert results == [(True, {"status": "ok", "run": 1})] * 20


def test_while_one_thread_checks_the_others_answer_with_the_last_figures() -> None:
    check = SlowCheck()
    cache = HealthCache(check)
    check.release.set()
    cache.get(NONE)  # run 1: stale at once (period 0)
    check.release.clear()
    check.started.clear()
    refresher, _ = in_threads(1, lambda: cache.get(NONE))  # run 2, held
    assert check.started.wait(10)
    # Not one of these waits for the held check: each returns the previous figures.
    others = [cache.get(NONE) for _ in range(50)]
    assert others == [(True, {"status": "ok", "run": 1})] * 50
    check.release.set()
    refresher[0].join(30)
    assert check.runs == 2
