"""loadtest.site_bench's own arithmetic on fixed data: step figures, the keep-up
decision, worker-log parsing and the tables. No services, no clocks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from loadtest.site_bench import (
    capacity_table,
    ceiling_table,
    check_word,
    evaluate,
    handoff_note,
    handoff_sustained,
    handoff_table,
    highest_sustained,
    keep_up,
    ladder,
    limited_by,
    md_table,
    merge_handoff_outputs,
    normalize_doc,
    parse_flushes,
    steps_table,
    summarize_handoff_step,
    summarize_step,
    window_stats,
)
from loadtest.site_handoff import plan_step, records_for, stamp
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
    assert not store["met"] and store["value"] == "d2 not run"
    http = next(c for name, c in checks.items() if name.startswith("over HTTP"))
    assert check_word(http) == "INFO" and http["value"].startswith("6 of 1,000 events/s = 1% (eventlog fell behind")
    original = next(c for name, c in checks.items() if name.startswith("the original"))
    assert original["met"] and "4.90 s" in original["value"]


# ---------------------------------------------------------------- (d2) pipeline-only


def fake_view(at: float, n: int, tracker: int) -> list[tuple[float, dict[str, Any]]]:
    """One page view's raw events as loadtest.store_ceiling.view_events gives them."""
    page = {"event_id": f"pv{n}", "source": "middleware", "path_info": "/", "referrer": "https://t.co/",
            "datetime": at}
    kinds = ["js.pageview", "js.exit", "js.visit_end"][:tracker]
    return [(at, page)] + [(at + 0.1 * (i + 1), {"event_id": f"e{n}{i}", "source": "js", "kind": kind,
                                                  "page_view_id": f"pv{n}", "referrer": "", "received": 0.0,
                                                  "ts": 0}) for i, kind in enumerate(kinds)]


def test_plan_step_spaces_page_views_to_offer_the_rate_in_events() -> None:
    counter = iter(range(1000))
    sizes = iter([3, 1, 3, 1] * 50)  # 2 events per page view on average
    spacing, views = plan_step(lambda at: fake_view(at, next(counter), next(sizes) - 1), rate=10, seconds=4)
    assert sum(len(v) for v in views) == 40 and len(views) == 20  # 10 events/s over 4 s
    assert spacing == 0.2
    assert views[3][0][0] == pytest.approx(0.6) and views[2][2][0] == pytest.approx(0.6)  # tracker after the page


def test_records_for_tags_page_views_across_processes_and_keeps_time_order() -> None:
    views = [[(i * 0.5 + off, e) for off, e in fake_view(0.0, i, 3 if i == 0 else 0)] for i in range(3)]
    items = records_for(views, "p800", index=1, processes=4)
    assert [off for off, _, _ in items] == sorted(off for off, _, _ in items)
    pages = [r for _, _, r in items if r["k"] == "page"]
    assert [r["tag"] for r in pages] == ["p800-000001", "p800-000005", "p800-000009"]  # seq = n * 4 + 1
    assert pages[0]["pv"] == "pv0" and pages[1]["pv"] is None  # only a page with tracker events has a pv
    first = [e for _, e, _ in items if e.get("page_view_id") == "pv0"]
    assert {e["referrer"] for e in first} == {"https://t.co/?sbt=p800-000001"}  # as the page's Referer
    exits = [r for _, _, r in items if r["k"] == "beacon" and r["kinds"] == ["exit"]]
    assert [r["exit_id"] for r in exits] == ["e01"]
    page, tracker = {"source": "middleware"}, {"source": "js"}
    stamp(page, 12.5)
    stamp(tracker, 12.5)
    assert page == {"source": "middleware", "datetime": 12.5}
    assert tracker == {"source": "js", "received": 12.5, "ts": 12500}


def handoff_records(step: str = "r2") -> list[dict[str, Any]]:
    """eight_page_views() as a hand-off process writes them: appended = 200 / 204."""
    return [dict(r, sent=r.get("sched", r["sent"])) for r in eight_page_views()]


def test_handoff_step_counts_events_offered_and_stored() -> None:
    step = {"tag": "r2", "rate": 6.25, "seconds": 4.0}
    ok = summarize_handoff_step(step, handoff_records(), [doc(s) for s in range(8)], {"x5"})
    assert (ok["events_offered"], ok["events_stored"]) == (25, 25)
    assert (ok["offered_per_s"], ok["stored_per_s"], ok["page_views_per_s"]) == (6.2, 6.2, 2.0)
    assert ok["served_share"] is None  # no site: the rate is in events, not page views
    assert keep_up(ok, {"late_p99_s": 0.0}) == (True, [])
    short = summarize_handoff_step(step, handoff_records(), [doc(s) for s in range(8) if s != 5], set())
    assert short["events_stored"] == 25 - 4  # the page view, its pageview, visit_end, and the exit
    assert short["stored_per_s"] == pytest.approx(5.2, abs=0.05)


def test_merge_handoff_outputs_sums_the_processes() -> None:
    records = handoff_records()
    records[0]["sent"] += 0.4  # process 0 appended its first page view 0.4 s late
    outputs = [{"summary": {"page_views": 4, "events": 12, "appended": 12, "errors": 0, "shipped": 12,
                            "cpu_seconds": 0.5, "ship_wait_s": 0.3}, "records": records[:12]},
               {"summary": {"page_views": 4, "events": 12, "appended": 12, "errors": 0, "shipped": 12,
                            "cpu_seconds": 0.25, "ship_wait_s": 0.1}, "records": records[12:]}]
    load, merged = merge_handoff_outputs(outputs)
    assert len(merged) == 24 and load["events"] == 24 and load["cpu_seconds"] == 0.75
    assert load["late_max_s"] == pytest.approx(0.4) and load["ship_wait_max_s"] == 0.3


def _handoff_step(rate: float, lag: float, lost: int = 0) -> dict[str, Any]:
    step = {"tag": "r2", "rate": rate, "seconds": 4.0}
    summary = summarize_handoff_step(step, handoff_records(), [doc(s, lag=lag) for s in range(lost, 8)], {"x5"})
    kept, reasons = keep_up(summary, {"late_p99_s": 0.0})
    return {**step, "design": "handoff", "summary": summary, "load": {"late_p99_s": 0.002}, "kept_up": kept,
            "reasons": reasons, "cpu_cores": {"loadgen": 0.4}, "machine": {"other_cores": 0.1}}


def test_handoff_ladder_note_table_and_sustained() -> None:
    steps = [_handoff_step(400, 0.3), _handoff_step(800, 0.6), _handoff_step(1200, 2.5, lost=1)]
    assert handoff_sustained(steps) == 6.2  # the 800 step's events/s offered (all stored)
    assert handoff_note(steps) == ("pipeline-only fell behind at 1,200 events/s (lag p99 2.5 s; 1 lost; "
                                   "2 tracker events not stored)")
    assert handoff_note(steps[:2]) == "pipeline-only kept up at every step, up to 800 events/s"
    assert handoff_sustained(steps[2:]) is None
    lines = handoff_table(steps).splitlines()
    assert len(lines) == 2 + 3 and "| yes " in lines[2] and "NO: lag p99 2.5 s" in lines[4]
    assert "1/8" in lines[4] and "2 ms" in lines[2]


def test_the_store_target_is_judged_on_the_pipeline_only_ladder() -> None:
    results = fixed_results()
    results["store_ceiling"] = {"mix": {"events_per_s": 8.0, "writes": 100, "batch_p50_s": 0.1}}
    results["handoff"] = {"steps": [_handoff_step(400, 0.3), _handoff_step(800, 0.6),
                                    _handoff_step(1200, 2.5, lost=1)]}
    checks = evaluate(results)
    store = next(c for c in checks if c["name"].startswith("sustained mixed"))
    assert store["met"] and check_word(store) == "PASS"
    assert store["value"].startswith("6 of 8 events/s = 78% (pipeline-only fell behind at 1,200")
    http = next(c for c in checks if c["name"].startswith("over HTTP"))
    assert check_word(http) == "INFO" and http["value"].startswith("6 of 8 events/s = 78%")
    results["handoff"]["steps"] = results["handoff"]["steps"][:1]  # every step kept up: a lower bound
    store = next(c for c in evaluate(results) if c["name"].startswith("sustained mixed"))
    assert store["value"].startswith("at least 6 of 8") and store["met"]
    results["store_ceiling"]["mix"]["events_per_s"] = 10.0
    assert not next(c for c in evaluate(results) if c["name"].startswith("sustained mixed"))["met"]
    text = ceiling_table(results["store_ceiling"], 6.2, 6.2)
    assert "eventlog pipeline-only (d2) sustained" in text and "6 (62%)" in text
