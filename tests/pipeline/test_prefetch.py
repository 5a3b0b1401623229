"""The store's prefetch window is sized in events, not messages."""

from __future__ import annotations

from pipeline.prefetch import PrefetchWindow


def test_small_messages_open_the_window_to_a_batch_worth_of_events() -> None:
    window = PrefetchWindow(events=3000, base=8)
    for _ in range(50):
        window.observe(4)
    assert window.limit() == 8 + 750  # 3,000 events of 4 each, on top of the base


def test_large_messages_keep_it_near_the_base() -> None:
    window = PrefetchWindow(events=3000, base=8)
    window.observe(500)
    assert window.limit() == 8 + 6


def test_a_burst_of_large_messages_shrinks_it_at_once() -> None:
    window = PrefetchWindow(events=3000, base=8)
    for _ in range(100):
        window.observe(2)
    assert window.limit() == 8 + 1500
    window.observe(500)
    assert window.limit() == 8 + 6  # memory stays near 3,000 events


def test_one_small_message_among_large_ones_does_not_open_it_wide() -> None:
    window = PrefetchWindow(events=3000, base=8)
    window.observe(500)
    window.observe(1)
    assert window.limit() <= 8 + 7  # 3,000 / 475 events: one more message, not 3,000


def test_the_limit_is_never_zero_which_would_mean_unlimited() -> None:
    window = PrefetchWindow(events=1, base=1)
    window.observe(10_000)
    assert window.limit() == 2


def test_updates_are_sent_only_when_the_limit_moved_noticeably() -> None:
    window = PrefetchWindow(events=3000, base=8)
    window.observe(4)
    assert window.worth_updating(8)
    assert not window.worth_updating(window.limit())
    assert not window.worth_updating(window.limit() + 10)
    assert window.worth_updating(0)
