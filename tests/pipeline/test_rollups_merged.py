"""pipeline.rollups.merged: the kept sum of the documents a run did not write (no server needed)."""

from __future__ import annotations

from typing import Any

from pipeline.rollups import tables
from pipeline.rollups.merged import MergeCache, merged
from pipeline.rollups.sketch import Distinct


def doc(doc_id: str, run: str, views: int, path: str, visitors: list[str]) -> dict[str, Any]:
    return {"_id": doc_id, "run": run, "n": {"page_views": views},
            **tables.encode({"path": {(path,): [views]}}), "u": {"visitors": Distinct.of(visitors).to_doc()}}


def figures(result: Any) -> tuple[dict[str, float], dict[str, Any], int]:
    return result.n, result.tables, result.distinct("visitors").count()


def test_the_kept_sum_plus_this_runs_documents_equals_the_plain_sum() -> None:
    cache = MergeCache(entries=2)
    hours = [doc("h1", "r1", 3, "/a", ["x", "y"]), doc("h2", "r1", 2, "/b", ["y"]), doc("h3", "r2", 5, "/a", ["z"])]
    assert figures(cache.merged("day", hours, "r2")) == figures(merged(hours))
    again = [*hours[:2], doc("h3", "r3", 7, "/c", ["x", "w"])]  # the next run rewrote h3 only
    result = cache.merged("day", again, "r3")
    assert figures(result) == figures(merged(again))
    assert result.tables["path"] == {("/a",): [3], ("/b",): [2], ("/c",): [7]}


def test_a_result_changed_by_its_caller_leaves_the_kept_sum_alone() -> None:
    cache = MergeCache(entries=2)
    hours = [doc("h1", "r1", 3, "/a", ["x"]), doc("h2", "r2", 1, "/a", ["y"])]
    first = cache.merged("day", hours, "r2")
    first.add(doc("h9", "r9", 100, "/a", ["q"]))
    first.n["page_views"] = -1
    assert figures(cache.merged("day", hours, "r2")) == figures(merged(hours))


def test_a_document_rewritten_by_another_run_is_not_taken_from_the_kept_sum() -> None:
    cache = MergeCache(entries=2)
    cache.merged("day", [doc("h1", "r1", 3, "/a", ["x"]), doc("h2", "r2", 1, "/a", ["y"])], "r2")
    # Another process's run (r5) rewrote h1 (a late event) since: same _id, other run.
    now = [doc("h1", "r5", 4, "/a", ["x", "v"]), doc("h2", "r6", 2, "/a", ["y"])]
    assert figures(cache.merged("day", now, "r6")) == figures(merged(now))


def test_documents_without_a_run_are_summed_each_time() -> None:
    cache = MergeCache(entries=2)
    old = {**doc("h1", "", 3, "/a", ["x"]), "run": None}
    hours = [old, doc("h2", "r2", 1, "/a", ["y"])]
    assert figures(cache.merged("day", hours, "r2")) == figures(merged(hours))
    old["n"] = {"page_views": 10}  # the same identity, other figures: nothing was kept for it
    assert cache.merged("day", hours, "r2").n == {"page_views": 11}


def test_at_most_the_given_number_of_groups_is_kept() -> None:
    cache = MergeCache(entries=2)
    for group in ("d1", "d2", "d3"):
        cache.merged(group, [doc("h1", "r1", 1, "/a", ["x"]), doc("h2", "r2", 1, "/a", ["x"])], "r2")
    assert list(cache._sums) == ["d2", "d3"]
