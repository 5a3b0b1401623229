"""loadtest.site_bench's own arithmetic on fixed data: step figures, the keep-up
decision, worker-log parsing and the tables. No services, no clocks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from loadtest.site_bench import (
    capacity_table,
    evaluate,
    highest_sustained,
    keep_up,
    ladder,
    limited_by,
    md_table,
    normalize_doc,
    parse_flushes,
    steps_table,
    summarize_step,
    window_stats,
)
from loadtest.site_load import make_tag, parse_tag, summarize_load, with_tag

T0 = 1_800_000_000.0
STEP = {"tag": "r2", "rate": 2.0, "seconds": 4.0}


def page(seq: int, status: int = 200, hops: int = 1, pv: str | None = "auto") -> dict[str, Any]:
    sched = T0 + seq / STEP["rate"]
    return {"k": "page", "tag": make_tag("r2", seq), "sched": sched, "sent": sched, "done": sched + 0.02,
            "status": status, "hops": hops, "pv": f"pv{seq}" if pv == "auto" else pv, "js": True, "path": "/"}


def beacon(seq: int, kinds: list[str], exit_id: str | None = None, status: int = 204) -> dict[str, Any]:
    sent = T0 + seq / STEP["rate"] + 0.3
    return {"k": "beacon", "tag": make_tag("r2", seq), "sent": sent, "done": sent + 0.01, "status": status,
            "kinds": kinds, "pv": f"pv{seq}", "exit_id": exit_id}


def doc(seq: int, lag: float = 0.5, doc_id: str | None = None, sources: tuple[str, ...] = ("middleware", "js"),
        pageview: bool = True, visit_end: bool = True, step: str = "r2") -> dict[str, Any]:
    at = T0 + seq / STEP["rate"] + 0.01
    return {"tag": make_tag(step, seq), "id": doc_id or f"pv{seq}", "datetime": at, "stored_at": at + lag,
            "sources": list(sources), "pageview": pageview, "visit_end": visit_end}


def eight_page_views() -> list[dict[str, Any]]:
    """8 page views in 4 s, each with its pageview and visit_end beacons; #5 also leaves on an exit link."""
    records = []
    for seq in range(8):
        records += [page(seq), beacon(seq, ["pageview"]),
                    beacon(seq, ["exit", "visit_end"] if seq == 5 else ["visit_end"], "x5" if seq == 5 else None)]
    return records


def test_everything_stored_once_keeps_up() -> None:
    summary = summarize_step(STEP, eight_page_views(), [doc(s) for s in range(8)], {"x5"})
    assert summary["page_views_answered"] == 8 and summary["answered_share"] == 1.0
    assert (summary["lost"], summary["duplicated"], summary["duplicate_ids"]) == (0, 0, 0)
    assert summary["tracker_accepted"] == {"pageview": 8, "visit_end": 8, "exit": 1}
    assert summary["tracker_lost"] == {"pageview": 0, "visit_end": 0, "exit": 0}
    assert summary["events_expected"] == 8 + 17 and summary["events_per_s"] == 6.2
    assert summary["lag_p50_s"] == 0.5 and summary["lag_p99_s"] == 0.5
    assert keep_up(summary, {"late_p99_s": 0.01}) == (True, [])


def test_lag_is_taken_over_the_last_half_of_the_step() -> None:
    docs = [doc(s, lag=5.0 if s < 4 else 0.4) for s in range(8)]
    summary = summarize_step(STEP, eight_page_views(), docs, {"x5"})
    assert summary["lag_window_docs"] == 4
    assert summary["lag_p99_s"] == 0.4 and summary["lag_all_p99_s"] == 5.0


def test_a_missing_page_view_is_lost_and_a_slow_one_is_late() -> None:
    docs = [doc(s, lag=3.0 if s == 7 else 0.5) for s in range(8) if s != 2]
    summary = summarize_step(STEP, eight_page_views(), docs, {"x5"})
    assert summary["lost"] == 1
    assert summary["tracker_lost"] == {"pageview": 1, "visit_end": 1, "exit": 0}  # they merge into the lost one
    kept, reasons = keep_up(summary)
    assert not kept
    assert reasons == ["lag p99 3.0 s", "1 lost", "2 tracker events not stored"]


def test_beacons_that_did_not_merge_and_exit_links_not_stored() -> None:
    docs = [doc(s, pageview=s != 1, visit_end=s != 6) for s in range(8)]
    summary = summarize_step(STEP, eight_page_views(), docs, set())
    assert summary["tracker_lost"] == {"pageview": 1, "visit_end": 1, "exit": 1}
    assert summary["lost"] == 0


def test_a_second_document_for_a_tag_is_a_duplicate_but_a_redirect_is_two() -> None:
    records = [page(0), page(1, status=301, hops=2, pv=None), page(2, pv=None)]
    docs = [doc(0), doc(1, doc_id="a"), doc(1, doc_id="b"), doc(2, doc_id="c"), doc(2, doc_id="d")]
    summary = summarize_step({**STEP, "seconds": 1.5}, records, docs)  # 3 page views at 2/s
    assert summary["documents_expected"] == 4
    assert (summary["lost"], summary["duplicated"]) == (0, 1)
    assert keep_up(summary) == (False, ["1 duplicated"])


def test_a_tracker_record_under_another_id_is_an_extra_document() -> None:
    docs = [doc(s) for s in range(8)] + [doc(3, doc_id="browser-made", sources=("js",))]
    summary = summarize_step(STEP, eight_page_views(), docs, {"x5"})
    assert summary["standalone_tracker_docs"] == 1 and summary["duplicated"] == 1
    assert not keep_up(summary)[0]


def test_other_steps_and_unanswered_requests_are_counted_apart() -> None:
    records = [page(0), page(4), page(5, status=0)]  # no complete answer for #5 (it timed out here)
    docs = [doc(0), doc(4), doc(5), doc(4, step="r4", doc_id="other-step")]
    summary = summarize_step(STEP, records, docs)
    assert summary["page_views_answered"] == 2 and summary["answered_share"] == 0.6667
    assert (summary["lost"], summary["duplicated"], summary["stored_unanswered"]) == (0, 0, 1)
    assert "site answered 67%" in keep_up(summary)[1]


def test_keep_up_needs_the_generator_on_time_and_something_stored() -> None:
    stored = summarize_step(STEP, eight_page_views(), [doc(s) for s in range(8)], {"x5"})
    assert keep_up(stored, {"late_p99_s": 2.5}) == (False, ["load generator 2.5 s late"])
    nothing = summarize_step({**STEP, "seconds": 0.5}, [page(0)], [])
    assert keep_up(nothing)[1] == ["nothing stored from the last half", "1 lost"]


def test_a_site_that_answers_late_did_not_serve_the_rate() -> None:
    records = eight_page_views()
    for record in records:
        if record["k"] == "page":
            record["done"] += 4.0 + record["sched"] - T0  # the queue grows: the last answer comes 7.5 s late
    summary = summarize_step(STEP, records, [doc(s) for s in range(8)], {"x5"})
    assert summary["serving_s"] == 11.02 and summary["answered_per_s"] == 0.7
    assert keep_up(summary) == (False, ["site served 1/s (36%)"])


def test_what_limited_a_step() -> None:
    step = {"summary": summarize_step(STEP, [page(0), page(1, status=0)], [doc(0, lag=4.0)]),
            "load": {"late_p99_s": 0.0, "latency_p99_ms": 9000.0}, "queues_at_end": {"enrich": 3, "store": 40},
            "machine": {"busy_cores": 2.0, "other_cores": 0.7}}
    assert limited_by(step, cpus=2) == ["site (answered 50% of the page views, at 0/s; HTTP p99 9,000 ms)",
                                        "pipeline (43 messages queued at the end of the step)",
                                        "machine (2.0 of 2 cores busy, 0.7 by others)"]


def test_ladder_and_highest_sustained() -> None:
    assert ladder([40, 10, 20], 30) == [(10.0, False), (20.0, False), (30.0, True), (40.0, False)]
    assert ladder([10, 20], 20) == [(10.0, False), (20.0, True)]
    assert ladder([10], None) == [(10.0, False)]
    steps = [{"rate": 10, "kept_up": True}, {"rate": 20, "kept_up": True}, {"rate": 40, "kept_up": False}]
    assert highest_sustained(steps)["rate"] == 20
    assert highest_sustained(steps[2:]) is None


def test_tags_travel_in_referrers() -> None:
    tag = make_tag("r40t", 12)
    assert tag == "r40t-000012"
    assert with_tag("https://www.google.com/", tag) == "https://www.google.com/?sbt=r40t-000012"
    assert with_tag("http://127.0.0.1:8000/tutorial-search/?foss=BASH", tag).endswith("?foss=BASH&sbt=r40t-000012")
    assert parse_tag("http://x/?sbt=r10-000001&sbt=r40t-000012") == "r40t-000012"
    assert parse_tag("") is None and parse_tag(None) is None


def test_normalize_doc_reads_dates_numbers_and_strings() -> None:
    stamp = datetime(2027, 1, 15, 12, 0, 0, tzinfo=UTC)
    eventlog = normalize_doc({"_id": "pv1", "referrer": "https://t.co/?sbt=r2-000001", "datetime": stamp,
                              "stored_at": stamp.isoformat(), "sources": ["middleware", "js"], "screen_width": 412})
    assert eventlog["tag"] == "r2-000001" and eventlog["datetime"] == eventlog["stored_at"] == stamp.timestamp()
    assert eventlog["pageview"] and not eventlog["visit_end"]
    original = normalize_doc({"_id": 7, "referrer": "", "datetime": 1.5, "stored_at": 2})
    assert original == {"tag": None, "id": "7", "datetime": 1.5, "stored_at": 2.0, "sources": [],
                        "pageview": False, "visit_end": False}


def test_store_worker_flush_lines() -> None:
    log = "\n".join([
        "[2027-01-15 12:00:00,250: INFO/MainProcess] Task eventlog.store_events[x] received",
        "[2027-01-15 12:00:01,000: INFO/ForkPoolWorker-1] eventlog: stored 40 events (0 already stored, "
        "60 merged, 0 dead letters) from 8 messages",
        "[2027-01-15 12:00:02,500: INFO/ForkPoolWorker-2] eventlog: stored 900 events (3 already stored, "
        "100 merged, 0 refused, 0 dead letters) from 30 messages",
        "a traceback line: stored 5 events from 1 messages",  # no timestamp: not a flush line
    ])
    flushes = parse_flushes(log)
    assert [(f["inserted"], f["merged"], f["messages"]) for f in flushes] == [(40, 60, 8), (900, 100, 30)]
    assert flushes[1]["at"] - flushes[0]["at"] == pytest.approx(1.5)
    stats = window_stats(flushes, [], flushes[0]["at"], flushes[0]["at"] + 2.0)
    assert stats["store_flushes"] == 2 and stats["events_per_flush_max"] == 1000
    assert stats["messages_per_flush_p50"] == 19.0 and stats["store_events_per_s"] == 550.0


def test_md_table_pads_and_aligns() -> None:
    text = md_table(["rate", "design"], [[10, "eventlog"], [200, "original"]], right=[0])
    assert text.splitlines() == [
        "| rate | design   |",
        "| ---: | -------- |",
        "|   10 | eventlog |",
        "|  200 | original |",
    ]


def _step(design: str, rate: float, lag: float, lost: int = 0, target: bool = False) -> dict[str, Any]:
    docs = [doc(s, lag=lag) for s in range(8) if s >= lost]
    records = eight_page_views() if design == "eventlog" else [r for r in eight_page_views() if r["k"] == "page"]
    summary = summarize_step(STEP, records, docs, {"x5"})
    load = summarize_load(records, STEP["seconds"])
    kept, reasons = keep_up(summary, load)
    return {"design": design, "rate": rate, "target": target, "summary": summary, "load": load,
            "kept_up": kept, "reasons": reasons, "machine": {"other_cores": 0.25}}


def fixed_results() -> dict[str, Any]:
    return {
        "web_workers": 4,
        "capacity": {"off": {"page_views_per_s": 40.0}},
        "eventlog": {"steps": [_step("eventlog", 10, 0.6), _step("eventlog", 20, 0.7, target=True),
                               _step("eventlog", 40, 3.5)]},
        "original": {"original-5s": [_step("original-5s", r, 4.9, lost=1) for r in (10, 20, 40)],
                     "original-0s": [_step("original-0s", r, 0.3, lost=1) for r in (10, 20, 40)]},
        "store_ceiling": {"mix": {"events_per_s": 1000.0}},
    }


def test_steps_table_compares_the_designs_rate_by_rate() -> None:
    lines = steps_table({"eventlog": fixed_results()["eventlog"]["steps"], **fixed_results()["original"]})
    lines = lines.splitlines()
    assert len(lines) == 2 + 9
    assert [line.split("|")[2].strip() for line in lines[2:5]] == [
        "eventlog (pages + tracker)", "original, poll 5 s (pages only)", "original, no delay (pages only)"]
    assert "20 (target)" in lines[5]
    assert "| yes " in lines[2] and "NO: lag p99 3.5 s" in lines[8]
    assert "1/8" in lines[3] and "n/a" in lines[3]  # the original has no tracker


def test_capacity_table_gives_the_ratio_to_the_site_without_the_middleware() -> None:
    run = {"page_views_per_s": 400.0, "requests_per_s": 400.0, "latency_p50_ms": 30.0, "latency_p99_ms": 70.0,
           "statuses": {"200": 3900, "404": 100}, "errors": {}, "machine": {"other_cores": 0.1}}
    text = capacity_table({"off": run, "on": {**run, "page_views_per_s": 300.0}})
    assert "300 (0.75x)" in text and "middleware removed" in text


def test_targets_are_pass_fail_lines() -> None:
    checks = {c["name"].split(":")[0]: c for c in evaluate(fixed_results())}
    half = checks["W=4"]
    assert half["met"] and "20 pv/s" in half["name"]
    share = next(c for name, c in checks.items() if name.startswith("sustained rate"))
    assert not share["met"] and share["value"] == "20 of 40 pv/s = 50%"
    store = next(c for name, c in checks.items() if name.startswith("sustained mixed"))
    assert not store["met"] and store["value"].startswith("6 of 1,000 events/s = 1% (eventlog fell behind at 40")
    original = next(c for name, c in checks.items() if name.startswith("the original"))
    assert original["met"] and "4.90 s" in original["value"]
