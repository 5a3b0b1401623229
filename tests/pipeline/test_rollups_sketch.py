"""The distinct-count sketches of pipeline.rollups: exact while small, HyperLogLog++ beyond,
mergeable, stored as text. No server needed."""

from __future__ import annotations

from pipeline.rollups.sketch import EXACT_MAX, Distinct, merge_all


def ids(first: int, last: int) -> list[str]:
    return [f"visitor-{i}" for i in range(first, last)]


def test_small_sets_are_exact_and_merge_exactly() -> None:
    a, b = Distinct.of(ids(0, 600)), Distinct.of(ids(400, 1000) + ids(0, 10))
    assert a.exact and a.count() == 600
    assert merge_all([a.to_doc(), b.to_doc(), None]).count() == 1000  # each visitor once
    assert Distinct.from_doc(a.to_doc()).count() == 600
    assert Distinct().count() == 0 and merge_all([]).count() == 0


def test_past_the_exact_limit_it_estimates_within_two_percent() -> None:
    big = Distinct.of(ids(0, 200_000))
    assert not big.exact
    assert abs(big.count() - 200_000) / 200_000 < 0.02
    assert len(big.to_doc()["h"]) < 22_000  # 16 KiB of registers as base64, whatever the count


def test_merging_days_counts_a_returning_visitor_once() -> None:
    # thirty "days", each seeing the same 3,000 regulars and 3,000 visitors of its own
    days = [Distinct.of(ids(0, 3000) + ids(10_000 * (d + 1), 10_000 * (d + 1) + 3000)).to_doc() for d in range(30)]
    merged = merge_all(days).count()
    exact = 3000 + 30 * 3000
    assert abs(merged - exact) / exact < 0.02
    summed = sum(Distinct.from_doc(d).count() for d in days)  # what a sum of days says: ~180,000
    assert abs(summed - 30 * 6000) / (30 * 6000) < 0.02 and summed > 1.9 * merged


def test_exact_and_estimated_sketches_merge() -> None:
    small, big = Distinct.of(ids(0, EXACT_MAX)), Distinct.of(ids(EXACT_MAX, 50_000))
    assert small.exact and not big.exact
    total = Distinct.from_doc(small.to_doc()).merge(Distinct.from_doc(big.to_doc())).count()
    assert abs(total - 50_000) / 50_000 < 0.02
