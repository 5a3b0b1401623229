"""`make bench` (d): a real site's traffic, stepped up until the pipeline falls behind.

    python -m loadtest.site_bench              # the full run (15-25 minutes on 2 shared cores)
    python -m loadtest.site_bench --quick      # a smoke run (about 5 minutes)
    python -m loadtest.site_bench --rates 20,40,60 --step-seconds 30 --skip-original --keep-going

What runs, all on 127.0.0.1 (Redis db 12, flushed; never 0 or 9):

  site       gunicorn serving the demo site (demo.wsgi) with W worker processes (default 4):
             each has the eventlog middleware, its own spool and shipper thread
  workers    the real enrich worker (-Q eventlog.enrich, 2 processes) and store worker
             (-Q eventlog.store,eventlog.rollup, 2 processes), as `make up` runs them
  store      a fresh nx-27017 on a free port in a temporary directory
  traffic    loadtest.site_load in its own process: an open-loop paced generator (page
             view k leaves at t0 + k/rate whatever the answers) of the demo traffic's
             page mix, each page view followed by tracker.js's beacons (pageview details
             and visit_end merged into the page view's document, an exit link now and then)

Phases:

  1. capacity   closed loop, as fast as possible, same page mix, W workers, no pipeline
                workers running: the site with the middleware removed
                (loadtest.site_settings), with it, and with it plus the tracker's beacons
  2. eventlog   a warm-up, then steps of --rates page views/s (plus the target: half the
                capacity without the middleware) of --step-seconds each. After a step the
                benchmark waits until what was answered is stored (or stops advancing); the
                ladder stops at the first step that does not keep up (after running the
                target step, if it is still to come), unless --keep-going
  3. original   the same page views at the same steps (no beacons: the original design had
                no tracker) with the original hook (loadtest.original_hook: one LPUSH per
                request in each web process) and the original polling consumer
                (loadtest.baselines), sleeping 5 s, then not at all, between polls
  4. d2         pipeline-only: the same mix without HTTP (the site saturates before the
                pipeline on a small machine). --handoff-processes (4) processes of
                loadtest.site_handoff, each with its own Spool (one shared spool directory)
                and Shipper thread (tasks.publish.publish_batch, raw, the site's ship
                interval and batch), append the middleware's page-view events and the
                tracker events the beacon endpoint spools (loadtest.store_ceiling's raw
                events), paced to --handoff-rates events/s in all, against the same real
                workers and a fresh nx-27017; steps of --handoff-step-seconds until one
                does not keep up (lag p99 >= 2 s, or not everything stored once)
  5. ceiling    loadtest.store_ceiling: EventStore.store_writes alone on a fresh
                nx-27017, for this mix's writes (inserts + merge upserts + exit links).
                The ">= 70 % of the store's ceiling" target is judged on d2's highest
                sustained step; the HTTP ladder's ratio is kept as information

Per step: lag = stored_at - datetime of the step's page-view documents, over the page
views sent in the last half of the step; lost = answered (a complete HTTP answer) but not
stored after the drain wait; duplicated = more documents for a page view's tag than
the page view had hops (a tag ``sbt=<step>-<seq>`` travels in the Referer). Tracker
events answered 204 must be merged into the page view's document (no extra documents)
or be in exit_link_logs. A step keeps up when lag p99 < 2 s, nothing is lost or
duplicated, the site answered >= 99 % of the page views at >= 90 % of the offered rate
(a saturated site stretches a step's answers over more time), and the generator kept its pace.
CPU per component and the load of other users of the (shared) machine are recorded.

Results: tables on stdout, loadtest/results/site-<UTC>.json and site-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import redis
import requests

from deploy.stack import Proc, free_port, geolite_city_db, manage, nx_proc, wait_for_port, web_proc, worker_proc
from loadtest.baselines import LIST_KEY
from loadtest.bench import Procs, flush_redis, log_tail, wait_for_text
from loadtest.common import (
    GEOIP_TEST_DB,
    PYTHON,
    ROOT,
    machine_cpu_delta,
    machine_cpu_snapshot,
    percentile,
    process_tree,
    round_or_none,
    tree_cpu,
)
from loadtest.site_load import REQUEST_TIMEOUT, parse_tag, summarize_load

RESULTS = Path(__file__).resolve().parent / "results"
MONGO_DB = "site"
MAX_LAG_S = 2.0
LAG_WINDOW = 0.5  # the last half of each step
MIN_ANSWERED = 0.99  # of the page views sent, for a step to count as served
MIN_SERVED = 0.9  # of the offered rate, answered over the step (a saturated site stretches it)
MAX_LATE_S = 1.0  # generator's own lateness (p99) beyond which the rate was not really offered
CAPACITY_ROUNDS = 3  # interleaved slices per closed-loop variant
LEARNERS = 6  # logged in once per run; their (signed-cookie) sessions are valid on every site variant
PASSWORD = "demo-password"
DESIGNS = {
    "eventlog": "eventlog (pages + tracker)",
    "original-5s": "original, poll 5 s (pages only)",
    "original-0s": "original, no delay (pages only)",
}
PROJECTION = {"referrer": 1, "datetime": 1, "stored_at": 1, "sources": 1, "screen_width": 1, "visit_duration": 1,
              "event_id": 1}


# ================================================================== pure: per-step figures


def as_seconds(value: Any) -> float | None:
    """Epoch seconds of a stored time (BSON date, number, or ISO string)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return float(value)


def normalize_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """What the benchmark needs of a website_logs document."""
    return {
        "tag": parse_tag(doc.get("referrer")),
        "id": str(doc["_id"]),
        "datetime": as_seconds(doc.get("datetime")),
        "stored_at": as_seconds(doc.get("stored_at")),
        "sources": list(doc.get("sources") or []),
        "pageview": "screen_width" in doc,  # only the tracker's pageview sets it
        "visit_end": "visit_duration" in doc,
    }


def _lags(docs: Iterable[dict[str, Any]]) -> list[float]:
    return [d["stored_at"] - d["datetime"] for d in docs if d["stored_at"] is not None and d["datetime"] is not None]


def _tracker_figures(records: list[dict[str, Any]], docs: list[dict[str, Any]],
                     exit_ids: set[str]) -> dict[str, dict[str, int]]:
    """Tracker events answered 204, and how many of them did not reach MongoDB."""
    accepted = [r for r in records if r["k"] == "beacon" and r["status"] == 204]
    by_id = {d["id"]: d for d in docs}
    wanted = {
        "pageview": {r["pv"] for r in accepted if "pageview" in r["kinds"]},
        "visit_end": {r["pv"] for r in accepted if "visit_end" in r["kinds"]},
        "exit": {r["exit_id"] for r in accepted if r.get("exit_id")},
    }
    lost = {
        "pageview": sum(1 for pv in wanted["pageview"] if not by_id.get(pv, {}).get("pageview")),
        "visit_end": sum(1 for pv in wanted["visit_end"] if not by_id.get(pv, {}).get("visit_end")),
        "exit": len(wanted["exit"] - exit_ids),
    }
    return {"accepted": {k: len(v) for k, v in wanted.items()}, "lost": lost}


def summarize_step(step: dict[str, Any], records: list[dict[str, Any]], docs: list[dict[str, Any]],
                   exit_ids: set[str] | None = None, window: float = LAG_WINDOW) -> dict[str, Any]:
    """Figures of one step from the generator's records and the stored documents.

    ``step`` needs ``tag``, ``rate`` and ``seconds``; ``docs`` are normalized documents
    (those of other steps are ignored by tag). Lag is taken over the page views scheduled
    in the last ``window`` of the step.
    """
    prefix = step["tag"] + "-"
    pages = [r for r in records if r["k"] == "page"]
    answered = {r["tag"]: r for r in pages if r["status"]}
    by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        if doc["tag"] and doc["tag"].startswith(prefix):
            by_tag[doc["tag"]].append(doc)
    mine = [d for ds in by_tag.values() for d in ds]
    start = min((r["sched"] for r in pages), default=0.0)
    cut = start + (1.0 - window) * step["seconds"]
    late_docs = [d for t, r in answered.items() if r["sched"] >= cut for d in by_tag.get(t, [])]
    stored = [d for t in answered for d in by_tag.get(t, [])]
    tracker = _tracker_figures(records, mine, exit_ids or set())
    hops = sum(r["hops"] for r in answered.values())
    lags, all_lags = _lags(late_docs), _lags(stored)
    # A saturated site answers the step's page views over more time than the step lasted:
    # the rate that reached the pipeline is counted over that time, not the step's.
    seconds = max(step["seconds"], max((r["done"] for r in answered.values()), default=start) - start)
    events = hops + sum(tracker["accepted"].values())
    return {
        "page_views_sent": len(pages),
        "page_views_answered": len(answered),
        "answered_share": round(len(answered) / len(pages), 4) if pages else 0.0,
        "serving_s": round(seconds, 2),
        "answered_per_s": round(len(answered) / seconds, 1),
        "served_share": round(len(answered) / seconds / step["rate"], 3) if step.get("rate") else None,
        "events_expected": events,
        "events_per_s": round(events / seconds, 1),
        "documents_expected": hops,
        "documents": len(mine),
        "lost": sum(max(0, r["hops"] - len(by_tag.get(t, []))) for t, r in answered.items()),
        "duplicated": sum(max(0, len(by_tag.get(t, [])) - r["hops"]) for t, r in answered.items()),
        "duplicate_ids": len(mine) - len({d["id"] for d in mine}),
        "stored_unanswered": sum(len(ds) for t, ds in by_tag.items() if t not in answered),
        # A page view whose document is not under the id the page gave the tracker.
        "id_mismatch": sum(1 for t, r in answered.items()
                           if r.get("pv") and by_tag.get(t) and all(d["id"] != r["pv"] for d in by_tag[t])),
        "standalone_tracker_docs": sum(1 for d in mine if d["sources"] == ["js"]),
        "tracker_first": sum(1 for d in mine if d["sources"][:1] == ["js"]),
        "tracker_accepted": tracker["accepted"],
        "tracker_lost": tracker["lost"],
        "lag_window_docs": len(lags),
        "lag_p50_s": round_or_none(percentile(lags, 50)),
        "lag_p99_s": round_or_none(percentile(lags, 99)),
        "lag_max_s": round_or_none(max(lags) if lags else None),
        "lag_all_p50_s": round_or_none(percentile(all_lags, 50)),
        "lag_all_p99_s": round_or_none(percentile(all_lags, 99)),
    }


def missing(summary: dict[str, Any]) -> int:
    """What is answered but not (yet) stored: page-view documents and tracker events."""
    return summary["lost"] + sum(summary["tracker_lost"].values())


def keep_up(summary: dict[str, Any], load: dict[str, Any] | None = None,
            max_lag: float = MAX_LAG_S) -> tuple[bool, list[str]]:
    """Whether a step kept up, and if not, why (every reason that applies)."""
    reasons: list[str] = []
    p99 = summary["lag_p99_s"]
    if p99 is None:
        reasons.append("nothing stored from the last half")
    elif p99 >= max_lag:
        reasons.append(f"lag p99 {p99:.1f} s")
    if summary["lost"]:
        reasons.append(f"{summary['lost']} lost")
    if summary["duplicated"] or summary["duplicate_ids"]:
        reasons.append(f"{summary['duplicated'] + summary['duplicate_ids']} duplicated")
    tracker_lost = sum(summary["tracker_lost"].values())
    if tracker_lost:
        reasons.append(f"{tracker_lost} tracker events not stored")
    if summary["standalone_tracker_docs"] or summary["id_mismatch"]:
        reasons.append(f"{summary['standalone_tracker_docs'] + summary['id_mismatch']} extra documents")
    if summary["answered_share"] < MIN_ANSWERED:
        reasons.append(f"site answered {summary['answered_share']:.0%}")
    served = summary.get("served_share")
    if served is not None and served < MIN_SERVED:
        reasons.append(f"site served {summary['answered_per_s']:.0f}/s ({served:.0%})")
    late = (load or {}).get("late_p99_s")
    if late is not None and late > MAX_LATE_S:
        reasons.append(f"load generator {late:.1f} s late")
    return not reasons, reasons


def highest_sustained(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The step with the highest rate that kept up, if any did."""
    kept = [s for s in steps if s.get("kept_up")]
    return max(kept, key=lambda s: s["rate"]) if kept else None


def limited_by(step: dict[str, Any], cpus: int | None = None) -> list[str]:
    """What held a step back: the pipeline, the site, the load generator, a saturated machine."""
    s, load, machine = step["summary"], step.get("load") or {}, step.get("machine") or {}
    found = []
    if (load.get("late_p99_s") or 0) > MAX_LATE_S:
        found.append("load generator")
    if (s["answered_share"] < MIN_ANSWERED or (s.get("served_share") or 1.0) < MIN_SERVED
            or (load.get("latency_p99_ms") or 0) > 1000 * MAX_LAG_S):
        found.append(f"site (answered {s['answered_share']:.0%} of the page views, at {s['answered_per_s']:.0f}/s; "
                     f"HTTP p99 {fmt_num(load.get('latency_p99_ms'))} ms)")
    queued = sum((step.get("queues_at_end") or {}).get(k, 0) for k in ("enrich", "store"))
    if (s["lag_p99_s"] or 0) >= MAX_LAG_S or missing(s) or s["lag_p99_s"] is None:
        found.append(f"pipeline ({queued} messages queued at the end of the step)")
    cpus = cpus or os.cpu_count() or 1
    busy = machine.get("busy_cores")
    if busy is not None and busy >= 0.95 * cpus:
        found.append(f"machine ({busy:.1f} of {cpus} cores busy, {machine.get('other_cores') or 0:.1f} by others)")
    return found


def _stop_note(steps: list[dict[str, Any]], name: str, unit: str, explain_limit: bool) -> str:
    """One line: where a ladder stopped and why, or that every step kept up."""
    if not steps:
        return f"{name}: no step ran"
    failed = [s for s in steps if not s.get("kept_up")]
    if not failed:
        return f"{name} kept up at every step, up to {max(s['rate'] for s in steps):,.0f} {unit}"
    first = min(failed, key=lambda s: s["rate"])
    note = f"{name} fell behind at {first['rate']:,.0f} {unit} ({'; '.join(first['reasons'])})"
    return f"{note}; limited by: {', '.join(limited_by(first)) or 'unclear'}" if explain_limit else note


def ladder_note(steps: list[dict[str, Any]]) -> str:
    """The HTTP ladder's stop, with what limited it (site, pipeline, machine)."""
    return _stop_note(steps, "eventlog", "page views/s", explain_limit=True)


def ladder(rates: list[float], target: float | None) -> list[tuple[float, bool]]:
    """(rate, is the target) in ascending order; the target joins the ladder once."""
    plan = {float(r): False for r in rates}
    if target:
        plan[float(target)] = True
    return sorted(plan.items())


def summarize_handoff_step(step: dict[str, Any], records: list[dict[str, Any]], docs: list[dict[str, Any]],
                           exit_ids: set[str] | None = None) -> dict[str, Any]:
    """(d2) figures of one step: summarize_step's (page views "answered" = appended), plus
    events/s offered (handed off) and stored over the step's seconds."""
    summary = summarize_step({**step, "rate": None}, records, docs, exit_ids)  # no site to serve a rate
    seconds = step["seconds"]
    stored = summary["events_expected"] - missing(summary)
    summary.update(events_offered=summary["events_expected"], events_stored=stored,
                   offered_per_s=round(summary["events_expected"] / seconds, 1),
                   stored_per_s=round(stored / seconds, 1),
                   page_views_per_s=round(summary["page_views_answered"] / seconds, 1))
    return summary


def merge_handoff_outputs(outputs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The W hand-off processes' outputs as one load summary and one list of records."""
    records = [r for out in outputs for r in out["records"]]
    summaries = [out["summary"] for out in outputs]
    late = [max(0.0, r["sent"] - r["sched"]) for r in records if r["k"] == "page" and r["status"]]

    def total(key: str) -> float:
        return sum(s.get(key) or 0 for s in summaries)

    load = {"processes": len(outputs), "page_views": int(total("page_views")), "events": int(total("events")),
            "appended": int(total("appended")), "errors": int(total("errors")), "shipped": int(total("shipped")),
            "cpu_seconds": round(total("cpu_seconds"), 2),
            "ship_wait_max_s": max((s.get("ship_wait_s") or 0 for s in summaries), default=None),
            "late_p50_s": round_or_none(percentile(late, 50)), "late_p99_s": round_or_none(percentile(late, 99)),
            "late_max_s": round_or_none(max(late) if late else None)}
    return load, records


def handoff_note(steps: list[dict[str, Any]]) -> str:
    """The pipeline-only ladder's stop (d2)."""
    return _stop_note(steps, "pipeline-only", "events/s", explain_limit=False)


def handoff_sustained(steps: list[dict[str, Any]]) -> float | None:
    """Events/s handed off (and all stored) at the highest step that kept up."""
    best = highest_sustained(steps)
    return best["summary"]["offered_per_s"] if best else None


# ================================================================== pure: worker logs

_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")
_FLUSH = re.compile(r"stored (\d+) events(.*?) from (\d+) messages")
_MERGED = re.compile(r"(\d+) merged")
_ENRICHED = re.compile(r"Task eventlog\.enrich_batch\[[^\]]*\] succeeded in ([\d.]+)s: (\d+)")


def _log_time(line: str) -> float | None:
    found = _LOG_TIME.match(line)
    if not found:
        return None
    # Celery's log times are local time, with milliseconds after a comma.
    return time.mktime(time.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")) + int(found.group(2)) / 1000


def parse_flushes(text: str) -> list[dict[str, float]]:
    """The store worker's flushes ("stored N events (... M merged ...) from K messages")."""
    flushes = []
    for line in text.splitlines():
        found = _FLUSH.search(line)
        at = _log_time(line) if found else None
        if found and at is not None:
            merged = _MERGED.search(found.group(2))
            flushes.append({"at": at, "inserted": int(found.group(1)),
                            "merged": int(merged.group(1)) if merged else 0, "messages": int(found.group(3))})
    return flushes


def parse_enriched(text: str) -> list[dict[str, float]]:
    """The enrich worker's tasks (one per shipped micro-batch): time and events forwarded."""
    tasks = []
    for line in text.splitlines():
        found = _ENRICHED.search(line)
        at = _log_time(line) if found else None
        if found and at is not None:
            tasks.append({"at": at, "seconds": float(found.group(1)), "events": int(found.group(2))})
    return tasks


def window_stats(flushes: list[dict[str, float]], enriched: list[dict[str, float]], start: float,
                 end: float) -> dict[str, Any]:
    """Store flushes and enrich tasks between ``start`` and ``end`` (epoch seconds)."""
    f = [x for x in flushes if start <= x["at"] < end]
    e = [x for x in enriched if start <= x["at"] < end]
    events = [x["inserted"] + x["merged"] for x in f]
    messages = [x["messages"] for x in f]
    span = max(1e-6, end - start)

    def med(values: list[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    return {
        "store_flushes": len(f), "store_flushes_per_s": round(len(f) / span, 2),
        "events_per_flush_p50": med(events), "events_per_flush_max": max(events) if events else None,
        "messages_per_flush_p50": med(messages), "messages_per_flush_max": max(messages) if messages else None,
        "store_events_per_s": round(sum(events) / span, 1),
        "enrich_tasks": len(e), "enrich_tasks_per_s": round(len(e) / span, 2),
        "events_per_enrich_task_p50": med([x["events"] for x in e]),
    }


# ================================================================== pure: tables


def fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def fmt_num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def md_table(headers: list[str], rows: list[list[Any]], right: Iterable[int] = ()) -> str:
    """A markdown table, padded so that it reads as well in a terminal."""
    right = set(right)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if i in right else v.ljust(w)
                                 for i, (v, w) in enumerate(zip(values, widths, strict=True))) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if i in right else "-" * w for i, w in enumerate(widths)) + " |"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def capacity_table(capacity: dict[str, Any]) -> str:
    rows = []
    off = (capacity.get("off") or {}).get("page_views_per_s")
    labels = (("off", "middleware removed"), ("on", "eventlog middleware"),
              ("on_mix", "eventlog middleware + tracker beacons"))
    for key, label in labels:
        run = capacity.get(key)
        if not run:
            continue
        ratio = f" ({run['page_views_per_s'] / off:.2f}x)" if off and key != "off" else ""
        statuses = ", ".join(f"{k}: {v}" for k, v in run["statuses"].items())
        rows.append([label, f"{fmt_num(run['page_views_per_s'])}{ratio}", fmt_num(run["requests_per_s"]),
                     f"{fmt_num(run['latency_p50_ms'], 1)} ms", f"{fmt_num(run['latency_p99_ms'], 1)} ms",
                     statuses + (f"; errors {run['errors']}" if run["errors"] else ""),
                     fmt_num((run.get("machine") or {}).get("other_cores"), 2)])
    return md_table(["site (closed loop)", "page views/s", "requests/s", "p50", "p99", "statuses", "other load"],
                    rows, right=(1, 2, 3, 4, 6))


def _step_row(design: str, step: dict[str, Any]) -> list[str]:
    s = step["summary"]
    load = step["load"]
    tracker = "n/a" if design != "eventlog" else str(sum(s["tracker_lost"].values()))
    lost = f"{s['lost']}/{s['documents_expected']}"
    if step.get("left_in_list"):
        lost += f" ({step['left_in_list']} left in list)"
    verdict = "yes" if step["kept_up"] else "NO: " + "; ".join(step["reasons"])
    rate = fmt_num(step["rate"]) + (" (target)" if step.get("target") else "")
    return [rate, DESIGNS.get(design, design), fmt_num(s["answered_per_s"], 1), fmt_num(s["events_per_s"]),
            fmt_s(s["lag_p50_s"]), fmt_s(s["lag_p99_s"]), lost, str(s["duplicated"] + s["duplicate_ids"]), tracker,
            f"{fmt_num(load.get('latency_p99_ms'))} ms", verdict,
            fmt_num((step.get("machine") or {}).get("other_cores"), 2)]


def steps_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Every design's steps, grouped by rate, so each rate compares the designs on the same traffic."""
    rows = []
    rates = sorted({s["rate"] for steps in runs.values() for s in steps})
    for rate in rates:
        for design, steps in runs.items():
            rows.extend(_step_row(design, s) for s in steps if s["rate"] == rate)
    return md_table(["rate pv/s", "design", "answered pv/s", "events/s", "lag p50", "lag p99", "lost", "dup",
                     "tracker lost", "HTTP p99", "kept up", "other load"], rows, right=(0, 2, 3, 4, 5, 9, 11))


def pipeline_table(steps: list[dict[str, Any]]) -> str:
    """Where eventlog's time went: CPU per component, queue depths, store flushes."""
    rows = []
    for step in steps:
        cpu, w, q = step.get("cpu_cores") or {}, step.get("workers") or {}, step.get("queues_at_end") or {}
        rows.append([fmt_num(step["rate"]), *(fmt_num(cpu.get(k), 2) for k in ("web", "enrich", "store", "nx-27017",
                                                                                  "loadgen")),
                     fmt_num((step.get("machine") or {}).get("other_cores"), 2),
                     f"{q.get('enrich', '-')}/{q.get('store', '-')}", fmt_num(w.get("enrich_tasks_per_s"), 1),
                     fmt_num(w.get("store_flushes_per_s"), 2), fmt_num(w.get("events_per_flush_p50")),
                     fmt_num(w.get("messages_per_flush_p50")), fmt_num(w.get("messages_per_flush_max")),
                     fmt_s(step.get("settle_s"))])
    return md_table(["rate", "web", "enrich", "store", "nx", "loadgen", "other", "queued enrich/store",
                     "enrich msgs/s", "flushes/s", "events/flush", "msgs/flush", "max msgs/flush", "drained in"],
                    rows, right=range(14))


def ceiling_table(ceiling: dict[str, Any], sustained_events_per_s: float | None,
                  handoff_events_per_s: float | None = None) -> str:
    rows = []
    for key, label in (("mix", "inserts + merge upserts + exit links (this mix)"), ("inserts", "inserts only")):
        run = ceiling.get(key)
        if run:
            rows.append([label, str(run["writes"]), fmt_num(run["events_per_s"]), fmt_s(run["batch_p50_s"])])
    mix = ceiling.get("mix", {}).get("events_per_s")
    for label, value in (("eventlog over HTTP sustained (highest step kept up)", sustained_events_per_s),
                         ("eventlog pipeline-only (d2) sustained (highest step kept up)", handoff_events_per_s)):
        if value is not None and mix:
            rows.append([label, "-", f"{value:,.0f} ({value / mix:.0%})", "-"])
    return md_table(["store_writes alone, one process", "writes", "events/s", "batch p50"], rows, right=(1, 2, 3))


def handoff_table(steps: list[dict[str, Any]]) -> str:
    """(d2): per step, events/s offered and stored, lag, losses and the hand-off processes' pace."""
    rows = []
    for step in steps:
        s, load, cpu = step["summary"], step.get("load") or {}, step.get("cpu_cores") or {}
        lost = f"{s['lost']}/{s['documents_expected']}"
        verdict = "yes" if step["kept_up"] else "NO: " + "; ".join(step["reasons"])
        rows.append([fmt_num(step["rate"]), fmt_num(s["offered_per_s"]), fmt_num(s["stored_per_s"]),
                     fmt_num(s["page_views_per_s"]), fmt_s(s["lag_p50_s"]), fmt_s(s["lag_p99_s"]), lost,
                     str(sum(s["tracker_lost"].values())), str(s["duplicated"] + s["duplicate_ids"]),
                     fmt_s(load.get("late_p99_s")), verdict, fmt_num(cpu.get("loadgen"), 2),
                     fmt_num((step.get("machine") or {}).get("other_cores"), 2)])
    return md_table(["rate ev/s", "offered ev/s", "stored ev/s", "page views/s", "lag p50", "lag p99", "lost",
                     "tracker lost", "dup", "late p99", "kept up", "hand-off cores", "other load"], rows,
                    right=(0, 1, 2, 3, 4, 5, 9, 11, 12))


# ================================================================== pure: targets


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets as PASS/FAIL lines (information: nothing is asserted)."""
    checks: list[dict[str, Any]] = []
    steps = results.get("eventlog", {}).get("steps", [])
    target = next((s for s in steps if s.get("target")), None)
    w = results.get("web_workers")
    if target:
        s = target["summary"]
        pipeline_ok = (s["lag_p99_s"] is not None and s["lag_p99_s"] < MAX_LAG_S and not missing(s)
                       and not s["duplicated"] + s["duplicate_ids"])
        served = "" if target["kept_up"] else f"; not kept up: {'; '.join(target['reasons'])}"
        checks.append({"name": f"W={w}: at half the site's rate without the middleware ({target['rate']:.0f} pv/s), "
                               "lag p99 < 2 s, 0 lost, 0 duplicated",
                       "met": bool(target["kept_up"]),
                       "value": f"lag p99 {fmt_s(s['lag_p99_s'])}, {s['lost']} lost, "
                                f"{s['duplicated'] + s['duplicate_ids']} dup (pipeline criteria "
                                f"{'met' if pipeline_ok else 'not met'}){served}"})
    else:
        checks.append({"name": "at half the site's rate without the middleware", "met": False,
                       "value": "not measured"})
    off = (results.get("capacity", {}).get("off") or {}).get("page_views_per_s")
    best = highest_sustained(steps)
    if off:
        share = (best["rate"] / off) if best else 0.0
        checks.append({"name": "sustained rate as a share of the site's rate without the middleware (aim 80 %)",
                       "met": share >= 0.8, "value": f"{best['rate'] if best else 0:.0f} of {off:.0f} pv/s = "
                                                     f"{share:.0%}"})
    ceiling = (results.get("store_ceiling") or {}).get("mix", {}).get("events_per_s")
    if ceiling:
        handoff = (results.get("handoff") or {}).get("steps")
        if handoff:
            d2 = handoff_sustained(handoff) or 0.0
            bound = "at least " if all(s.get("kept_up") for s in handoff) else ""
            checks.append({"name": "sustained mixed throughput >= 70 % of the store's ceiling "
                                   "(pipeline-only ladder d2, same mix without HTTP)",
                           "met": d2 >= 0.7 * ceiling,
                           "value": f"{bound}{d2:,.0f} of {ceiling:,.0f} events/s = {d2 / ceiling:.0%} "
                                    f"({handoff_note(handoff)})"})
        else:
            checks.append({"name": "sustained mixed throughput >= 70 % of the store's ceiling "
                                   "(pipeline-only ladder d2)", "met": False, "value": "d2 not run"})
        sustained = best["summary"]["events_per_s"] if best else 0.0
        checks.append({"name": "over HTTP: mixed throughput as a share of the store's ceiling (the site "
                               "saturates first: this cannot judge the 70 % target)", "info": True,
                       "met": sustained >= 0.7 * ceiling,
                       "value": f"{sustained:,.0f} of {ceiling:,.0f} events/s = {sustained / ceiling:.0%} "
                                f"({ladder_note(steps)})"})
    original = results.get("original") or {}
    rates = {s["rate"] for s in steps}
    covered = all({s["rate"] for s in original.get(d, [])} >= rates for d in ("original-5s", "original-0s"))
    checks.append({"name": "the original design's lag on the same traffic, in the same table",
                   "met": bool(original) and covered,
                   "value": "; ".join(f"{DESIGNS[d]}: lag p99 " + ", ".join(
                       f"{s['rate']:.0f}/s {fmt_s(s['summary']['lag_p99_s'])}" for s in original.get(d, []))
                       for d in ("original-5s", "original-0s") if original.get(d)) or "not run"})
    return checks


def check_word(check: dict[str, Any]) -> str:
    """PASS / FAIL, or INFO for a line kept as information."""
    return "INFO" if check.get("info") else "PASS" if check["met"] else "FAIL"


# ================================================================== services


@dataclass
class Live:
    """What the run has started and where things are."""

    args: argparse.Namespace
    procs: Procs
    tmp: Path
    broker: str
    var_dir: Path
    mmdb: str
    learners: Path
    mongo: str = ""
    nx: Proc | None = None
    pids: dict[str, list[int]] = field(default_factory=dict)  # component -> process roots, for CPU

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "EVENTLOG_BROKER_URL": self.broker,
            "EVENTLOG_MONGO_URL": self.mongo,
            "EVENTLOG_MONGO_DB": MONGO_DB,
            "EVENTLOG_GEOIP_CITY_DB": self.mmdb,
            "EVENTLOG_VAR_DIR": str(self.var_dir),
            "EVENTLOG_PROGRESS_CATALOGUE": "demo.catalogue.course_for",
            "EVENTLOG_SPOOL_DIR": str(self.tmp / "spool-default"),
            "PYTHONPATH": str(ROOT),
            **extra,
        }


def start_nx(live: Live, name: str) -> None:
    """A fresh nx-27017 on a free port, data in the run's temporary directory."""
    if live.nx is not None:
        live.procs.stop(live.nx)
    port = free_port()
    live.nx = live.procs.start(nx_proc(port, live.tmp / name, live.tmp / f"{name}.log"))
    wait_for_port("127.0.0.1", port, 30, "nx-27017")
    live.mongo = f"mongodb://127.0.0.1:{port}"
    live.pids["nx-27017"] = [live.nx.pid]


def start_workers(live: Live) -> list[Proc]:
    """The enrich and store workers, 2 processes each, as `make up` runs them."""
    env = live.env(EVENTLOG_SPOOL_DIR=str(live.tmp / "worker-spool"))
    started = []
    for name, queues in (("enrich", "eventlog.enrich"), ("store", "eventlog.store,eventlog.rollup")):
        log = live.tmp / f"worker-{name}.log"
        proc = live.procs.start(worker_proc(f"site-{name}", queues, env, 2, log))
        started.append((name, proc, log))
    for name, proc, log in started:
        wait_for_text(log, " ready.", 120, proc)
        live.pids[name] = [proc.pid]
    return [proc for _, proc, _ in started]


def start_web(live: Live, name: str, settings_module: str, hook: str = "") -> tuple[Proc, str]:
    """gunicorn with W workers serving the demo site under ``settings_module``; returns it and its URL."""
    port = free_port()
    env = live.env(DJANGO_SETTINGS_MODULE=settings_module, LOADTEST_SITE_HOOK=hook,
                   LOADTEST_ORIGINAL_REDIS=live.broker, EVENTLOG_SPOOL_DIR=str(live.tmp / f"spool-{name}"))
    proc = live.procs.start(web_proc(port, env, live.args.web_workers, live.tmp / f"web-{name}.log"))
    wait_for_port("127.0.0.1", port, 60, f"gunicorn ({name})")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # the master listens before its workers have loaded Django
        try:
            requests.get(base + "/robots.txt", timeout=5)  # a skipped path: records nothing
            break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or not proc.alive():
            raise RuntimeError(f"demo site ({name}) not answering:\n{log_tail(live.tmp / f'web-{name}.log')}")
        time.sleep(0.3)
    live.pids["web"] = [proc.pid]
    return proc, base


def log_in_learners(base: str, count: int) -> list[dict[str, str]]:
    """Session cookies of ``count`` learners, through the real login form (CSRF included)."""
    jars = []
    for i in range(1, count + 1):
        with requests.Session() as session:
            session.get(base + "/accounts/login/", timeout=30)
            data = {"username": f"learner{i}", "password": PASSWORD,
                    "csrfmiddlewaretoken": session.cookies.get("csrftoken") or ""}
            answer = session.post(base + "/accounts/login/", data=data, timeout=30,
                                  headers={"Referer": base + "/accounts/login/"})
            if answer.history and answer.url.rstrip("/") == base:
                jars.append(session.cookies.get_dict())
    return jars


def run_load(live: Live, base: str, step: str, mode: str, seconds: float, rate: float = 0.0,
             beacons: bool = True, seed: int = 7) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """loadtest.site_load in its own process; its summary and records."""
    out = live.tmp / f"load-{step}.json"
    cmd = [PYTHON, "-m", "loadtest.site_load", "--base-url", base, "--mode", mode, "--seconds", str(seconds),
           "--step", step, "--out", str(out), "--mmdb", live.mmdb, "--seed", str(seed),
           "--rate", str(rate), "--concurrency", str(live.args.concurrency)]
    if live.learners.exists():
        cmd += ["--learners", str(live.learners)]
    if not beacons:
        cmd.append("--no-beacons")
    log = live.tmp / f"load-{step}.log"
    proc = live.procs.start(Proc(f"load-{step}", cmd, env={"PYTHONPATH": str(ROOT)}, log=log))
    try:
        proc.popen.wait(seconds + REQUEST_TIMEOUT + 60)
    except subprocess.TimeoutExpired:
        pass
    live.procs.stop(proc)
    if not out.exists():
        raise RuntimeError(f"load generator for {step} failed:\n{log_tail(log)}")
    data = json.loads(out.read_text())
    out.unlink()
    return data["summary"], data["records"]


def _db(live: Live, name: str) -> Any:
    from pipeline.store import connect

    return connect(live.mongo, timeout_ms=10_000)[name]


def fetch_docs(db: Any, since: float, dates: bool) -> tuple[list[dict[str, Any]], set[str]]:
    """Normalized website_logs documents and exit-link ids from ``since`` on.

    nx-27017 compares dates to the second: the server narrows by time with a margin,
    the exact cut is the tag's (each page view's document carries its step's tag).
    """
    margin = since - 5.0
    bound: Any = datetime.fromtimestamp(margin, UTC) if dates else margin
    docs = [normalize_doc(d) for d in db["website_logs"].find({"datetime": {"$gte": bound}}, PROJECTION)]
    exits = {str(d["_id"]) for d in db["exit_link_logs"].find({"datetime": {"$gte": bound}}, {"_id": 1})}
    return docs, exits


def wait_until_stored(count_missing: Callable[[], int], max_wait: float, stall: float) -> tuple[float, int]:
    """Poll until nothing is missing, nothing more arrived for ``stall`` s, or ``max_wait``; (waited, missing)."""
    began = time.monotonic()
    last, last_change = None, began
    while True:
        now = time.monotonic()
        left = count_missing()
        took = time.monotonic() - now
        if left != last:
            last, last_change = left, now
        if left == 0 or now - last_change >= stall or now - began >= max_wait:
            return round(time.monotonic() - began, 2), left
        # Each poll reads the step's documents from the store the workers are writing to:
        # poll less often when that read is slow, so the benchmark does not hold the drain up.
        time.sleep(max(1.0, 2 * took))


def queue_depths(broker: str) -> dict[str, int]:
    """Messages waiting in the stage queues, and held unacknowledged by workers (kombu's Redis layout)."""
    client = redis.Redis.from_url(broker)
    try:
        return {"enrich": client.llen("eventlog.enrich"), "store": client.llen("eventlog.store"),
                "unacked": client.hlen("unacked"), "original_list": client.llen(LIST_KEY)}
    finally:
        client.close()


# ================================================================== steps


def measured(live: Live, run: Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]]
             ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Run the generator with CPU accounting: (summary, records, {cpu_cores, machine, began, ended})."""
    cpu0 = {name: tree_cpu(roots) for name, roots in live.pids.items()}
    machine0, began = machine_cpu_snapshot(), time.time()
    load, records = run()
    ended = time.time()
    machine1 = machine_cpu_snapshot()
    wall = max(1e-6, ended - began)
    cores = {name: round((tree_cpu(roots) - cpu0[name]) / wall, 2) for name, roots in live.pids.items()}
    cores["loadgen"] = round(load.get("cpu_seconds", 0.0) / wall, 2)
    ours = {os.getpid(), *(p for roots in live.pids.values() for root in roots for p in process_tree(root))}
    machine = machine_cpu_delta(machine0, machine1, ours, extra_ours_s=load.get("cpu_seconds") or 0.0)
    load["machine"] = machine
    return load, records, {"cpu_cores": cores, "machine": machine, "began": began, "ended": ended}


def run_step(live: Live, design: str, base: str, rate: float, target: bool, beacons: bool) -> tuple[dict, list]:
    """One paced step; the same seed per rate gives both designs the same page views."""
    tag = f"r{int(rate)}" + ("t" if target else "")
    seconds = live.args.step_seconds
    print(f"  {DESIGNS[design]}: {rate:.0f} page views/s for {seconds:.0f} s", flush=True)
    load, records, info = measured(live, lambda: run_load(live, base, tag, "paced", seconds, rate, beacons,
                                                          seed=int(rate * 10) + 7))
    step = {"design": design, "tag": tag, "rate": rate, "seconds": seconds, "target": target, "load": load,
            "queues_at_end": queue_depths(live.broker), **info}
    return step, records


def conclude(step: dict[str, Any], records: list[dict[str, Any]], docs: list[dict[str, Any]],
             exits: set[str]) -> dict[str, Any]:
    step["summary"] = summarize_step(step, records, docs, exits)
    step["kept_up"], step["reasons"] = keep_up(step["summary"], step["load"])
    return step


def report_step(step: dict[str, Any]) -> None:
    s = step["summary"]
    print(f"    answered {s['page_views_answered']}/{s['page_views_sent']}, lag p50 {fmt_s(s['lag_p50_s'])} "
          f"p99 {fmt_s(s['lag_p99_s'])}, lost {s['lost']}, dup {s['duplicated']}, tracker lost "
          f"{sum(s['tracker_lost'].values())}, HTTP p99 {fmt_num(step['load'].get('latency_p99_ms'))} ms; "
          f"kept up: {'yes' if step['kept_up'] else 'NO (' + '; '.join(step['reasons']) + ')'}", flush=True)


# ================================================================== phases


def combine_slices(slices: list[tuple[list[dict[str, Any]], dict[str, Any]]], slice_s: float) -> dict[str, Any]:
    """One variant's closed-loop slices as one run: rates over the slices' time, machine load averaged."""
    records = [r for recs, _ in slices for r in recs]
    result = summarize_load(records, slice_s * len(slices))
    machines = [info["machine"] for _, info in slices]

    def mean(key: str) -> float | None:
        values = [m[key] for m in machines if m.get(key) is not None]
        return round(statistics.fmean(values), 2) if values else None

    result["machine"] = {k: mean(k) for k in ("busy_cores", "bench_cores", "broker_cores", "other_cores")}
    result["slices"] = len(slices)
    return result


def run_capacity(live: Live) -> dict[str, Any]:
    """The site alone, closed loop: without the middleware, with it, with it and the beacons.

    Both sites run at once (an idle gunicorn costs nothing) and the variants take turns in
    short slices, so load from other users of the machine falls on all three alike.
    """
    args = live.args
    slice_s = args.capacity_seconds / CAPACITY_ROUNDS
    print(f"\n== capacity: closed loop, {args.concurrency} visitors, {args.web_workers} web workers, "
          f"{args.capacity_seconds:.0f} s per variant in {CAPACITY_ROUNDS} interleaved slices "
          "(no pipeline workers running)", flush=True)
    off, off_base = start_web(live, "off", "loadtest.site_settings", "off")
    on, on_base = start_web(live, "capacity", "demo.settings")
    live.pids["web"] = [off.pid, on.pid]
    live.learners.write_text(json.dumps(log_in_learners(off_base, LEARNERS)))
    variants = {"off": (off_base, False), "on": (on_base, False), "on_mix": (on_base, True)}
    keys = list(variants)
    for i, key in enumerate(keys):  # warm-ups, unmeasured
        run_load(live, variants[key][0], f"c0{i}", "closed", args.warmup_seconds, beacons=variants[key][1])
    slices: dict[str, list[tuple[list[dict[str, Any]], dict[str, Any]]]] = {key: [] for key in keys}
    for turn in range(CAPACITY_ROUNDS):
        for key in keys[turn % len(keys):] + keys[:turn % len(keys)]:  # order rotated each round
            base, beacons = variants[key]
            run = partial(run_load, live, base, f"c{keys.index(key) + 1}{turn}", "closed", slice_s, beacons=beacons)
            _, records, info = measured(live, run)
            slices[key].append((records, info))
    live.procs.stop(off)
    live.procs.stop(on)  # its shippers drain into the broker at exit; nothing consumes them
    flush_redis(live.broker)
    result = {key: combine_slices(parts, slice_s) for key, parts in slices.items()}
    for key in keys:
        print(f"  {key}: {result[key]['page_views_per_s']:.0f} page views/s, "
              f"{result[key]['requests_per_s']:.0f} requests/s", flush=True)
    return result


def drain(db: Any, pending: list[tuple[dict[str, Any], list[dict[str, Any]]]], since: float, max_wait: float,
          stall: float) -> tuple[float, int]:
    """Wait until every answered page view and tracker event of ``pending`` steps is stored."""
    def count() -> int:
        docs, exits = fetch_docs(db, since, dates=True)
        return sum(missing(summarize_step(step, records, docs, exits)) for step, records in pending)

    return wait_until_stored(count, max_wait, stall)


def eventlog_step(live: Live, db: Any, base: str, rate: float, target: bool) -> tuple[dict, list]:
    """One step, the wait for what it sent to be stored, and a first verdict (the final one
    is made after the drain at the end)."""
    args = live.args
    step, records = run_step(live, "eventlog", base, rate, target, beacons=True)
    step["settle_s"], _ = drain(db, [(step, records)], step["began"], args.settle_max, args.settle_stall)
    docs, exits = fetch_docs(db, step["began"], dates=True)
    report_step(conclude(step, records, docs, exits))
    return step, records


def climb(live: Live, db: Any, base: str, plan: list[tuple[float, bool]],
          began: float) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Up the ladder until a step does not keep up; then the target step, if it is still to
    come, after the backlog has drained (so that it starts from an empty pipeline)."""
    args = live.args
    steps = []
    for index, (rate, is_target) in enumerate(plan):
        steps.append(eventlog_step(live, db, base, rate, is_target))
        if steps[-1][0]["kept_up"] or args.keep_going:
            continue
        rest = [r for r, t in plan[index + 1:] if t]
        if rest:
            print(f"  draining before the target step (up to {args.drain_max:.0f} s)", flush=True)
            drain(db, steps, began, args.drain_max, args.drain_stall)
            steps.append(eventlog_step(live, db, base, rest[0], True))
        break
    return steps


def worker_figures(live: Live, steps: list[dict[str, Any]]) -> None:
    """Each step's store flushes and enrich tasks, from the workers' own logs."""
    flushes = parse_flushes((live.tmp / "worker-store.log").read_text(errors="replace"))
    enriched = parse_enriched((live.tmp / "worker-enrich.log").read_text(errors="replace"))
    for step in steps:
        step["workers"] = window_stats(flushes, enriched, step["began"], step["ended"] + (step.get("settle_s") or 0))


def run_eventlog(live: Live, target: float | None) -> dict[str, Any]:
    """eventlog's ladder: W web processes, the real workers, steps until one does not keep up."""
    args = live.args
    print(f"\n== eventlog: {args.web_workers} web processes, enrich + store workers (2 processes each), "
          f"steps of {args.step_seconds:.0f} s; target {fmt_num(target)} page views/s", flush=True)
    flush_redis(live.broker)
    workers = start_workers(live)
    web, base = start_web(live, "eventlog", "demo.settings")
    if not live.learners.exists():
        live.learners.write_text(json.dumps(log_in_learners(base, LEARNERS)))
    db = _db(live, MONGO_DB)
    began = time.time()
    warm, warm_records = run_load(live, base, "w0", "paced", args.warmup_seconds, min(args.rates))
    drain(db, [({"tag": "w0", "rate": 0, "seconds": args.warmup_seconds}, warm_records)], began, 60, 10)
    steps = climb(live, db, base, ladder(args.rates, target), began)
    waited, left = drain(db, steps, began, args.drain_max, args.drain_stall)
    print(f"  final drain: {waited:.0f} s, {left} still missing", flush=True)
    docs, exits = fetch_docs(db, began, dates=True)
    db.client.close()
    live.procs.stop(web)
    for proc in workers:
        live.procs.stop(proc)
    live.pids.pop("enrich", None)
    live.pids.pop("store", None)
    out = [conclude(step, records, docs, exits) for step, records in steps]
    worker_figures(live, out)
    best = highest_sustained(out)
    return {"steps": out, "target_rate": target, "final_drain_s": waited, "missing_after_drain": left,
            "sustained_rate": best["rate"] if best else None, "warmup": warm,
            "store_log_flush_lines": sample_flush_lines(live.tmp / "worker-store.log")}


def sample_flush_lines(path: Path, count: int = 12) -> list[str]:
    """A few of the store worker's own flush lines, as written (for the report)."""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if _FLUSH.search(ln)]
    step = max(1, len(lines) // count)
    return lines[::step][:count]


def settle_original(db: Any, step: dict[str, Any], records: list[dict[str, Any]], poll: float,
                    max_wait: float) -> float:
    """Wait for the consumer to store what it will: whole hundreds only, the last ones at the
    next poll (and a remainder under 100 never), so "no progress" means two polls without any."""
    def count() -> int:
        return missing(summarize_step(step, records, fetch_docs(db, step["began"], dates=False)[0]))

    return wait_until_stored(count, max_wait, 2 * poll + 3)[0]


def original_variant(live: Live, base: str, design: str, poll: float,
                     plan: list[tuple[float, bool]]) -> list[dict[str, Any]]:
    """Every step of the plan against one polling consumer (its own database)."""
    db_name = design.replace("-", "_")
    log = live.tmp / f"{design}-consumer.log"
    cmd = [PYTHON, "-m", "loadtest.baselines", "--redis", live.broker, "--mongo", live.mongo, "--db", db_name,
           "--interval", str(poll), "--max-seconds", "7200"]
    consumer = live.procs.start(Proc(design, cmd, env={"PYTHONPATH": str(ROOT)}, log=log))
    wait_for_text(log, "original consumer ready", 60, consumer)
    live.pids["consumer"] = [consumer.pid]
    db, client = _db(live, db_name), redis.Redis.from_url(live.broker)
    steps = []
    for rate, is_target in plan:
        step, records = run_step(live, design, base, rate, is_target, beacons=False)
        step["settle_s"] = settle_original(db, step, records, poll, live.args.drain_max)
        step["left_in_list"] = client.llen(LIST_KEY)
        client.delete(LIST_KEY)  # steps stay independent; what was left counts as lost
        docs, _ = fetch_docs(db, step["began"], dates=False)
        report_step(conclude(step, records, docs, set()))
        steps.append(step)
    db.client.close()
    client.close()
    live.procs.stop(consumer)
    live.pids.pop("consumer", None)
    return steps


def run_original(live: Live, plan: list[tuple[float, bool]]) -> dict[str, list[dict[str, Any]]]:
    """The same page views at the same steps: the original LPUSH hook and polling consumer."""
    args = live.args
    print(f"\n== original design: LPUSH per request, polling consumer; steps {', '.join(f'{r:.0f}' for r, _ in plan)}",
          flush=True)
    flush_redis(live.broker)
    start_nx(live, "nx-original")
    web, base = start_web(live, "original", "loadtest.site_settings", "original")
    run_load(live, base, "w1", "paced", args.warmup_seconds, min(args.rates), beacons=False)
    flush_redis(live.broker)  # the warm-up's logs
    out = {design: original_variant(live, base, design, poll, plan)
           for design, poll in (("original-5s", 5.0), ("original-0s", 0.0))}
    live.procs.stop(web)
    return out


def handoff_load(live: Live, tag: str, rate: float, seconds: float, seed: int
                 ) -> Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Start (d2)'s W hand-off processes, wait until each is warm; returns the step to run
    (start them all at once, wait for them to finish and their shippers to empty)."""
    args, w = live.args, live.args.handoff_processes
    go = live.tmp / f"go-{tag}"
    started = []
    for k in range(w):
        out, log = live.tmp / f"handoff-{tag}-{k}.json", live.tmp / f"handoff-{tag}-{k}.log"
        cmd = [PYTHON, "-m", "loadtest.site_handoff", "--rate", str(rate / w), "--seconds", str(seconds),
               "--step", tag, "--index", str(k), "--processes", str(w), "--seed", str(seed * 100 + k),
               "--mmdb", live.mmdb, "--go-file", str(go), "--out", str(out),
               "--ship-interval", str(args.ship_interval), "--ship-batch", str(args.ship_batch)]
        env = live.env(EVENTLOG_SPOOL_DIR=str(live.tmp / "spool-handoff"))
        started.append((live.procs.start(Proc(f"handoff-{tag}-{k}", cmd, env=env, log=log)), out, log))
    for proc, _, log in started:
        wait_for_text(log, "ready", 120, proc)

    def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        tmp = go.with_suffix(".tmp")
        tmp.write_text(f"{time.time() + 0.2}\n")
        os.replace(tmp, go)
        outputs = []
        for proc, out, log in started:
            try:
                proc.popen.wait(seconds + 120)
            except subprocess.TimeoutExpired:
                pass
            live.procs.stop(proc)
            if not out.exists():
                raise RuntimeError(f"hand-off process {proc.name} failed:\n{log_tail(log)}")
            outputs.append(json.loads(out.read_text()))
            out.unlink()
        return merge_handoff_outputs(outputs)

    return run


def handoff_step(live: Live, db: Any, rate: float, seconds: float, tag: str) -> tuple[dict, list]:
    """One (d2) step, the wait for what it handed off to be stored, and a first verdict."""
    args = live.args
    print(f"  pipeline-only: {rate:,.0f} events/s for {seconds:.0f} s ({args.handoff_processes} hand-off "
          "processes)", flush=True)
    run = handoff_load(live, tag, rate, seconds, seed=int(rate) + 3)
    load, records, info = measured(live, run)
    step = {"design": "handoff", "tag": tag, "rate": rate, "seconds": seconds, "target": False, "load": load,
            "queues_at_end": queue_depths(live.broker), **info}
    step["settle_s"], _ = drain(db, [(step, records)], step["began"], args.settle_max, args.settle_stall)
    docs, exits = fetch_docs(db, step["began"], dates=True)
    conclude_handoff(step, records, docs, exits)
    s = step["summary"]
    print(f"    offered {fmt_num(s['offered_per_s'])} events/s, stored {fmt_num(s['stored_per_s'])}/s, lag p50 "
          f"{fmt_s(s['lag_p50_s'])} p99 {fmt_s(s['lag_p99_s'])}, lost {s['lost']}, tracker lost "
          f"{sum(s['tracker_lost'].values())}, dup {s['duplicated'] + s['duplicate_ids']}, late p99 "
          f"{fmt_s(load.get('late_p99_s'))}; kept up: "
          f"{'yes' if step['kept_up'] else 'NO (' + '; '.join(step['reasons']) + ')'}", flush=True)
    return step, records


def conclude_handoff(step: dict[str, Any], records: list[dict[str, Any]], docs: list[dict[str, Any]],
                     exits: set[str]) -> dict[str, Any]:
    step["summary"] = summarize_handoff_step(step, records, docs, exits)
    step["kept_up"], step["reasons"] = keep_up(step["summary"], step["load"])
    return step


def run_handoff(live: Live) -> dict[str, Any]:
    """(d2): the same mix without HTTP: W hand-off processes, the real workers, a fresh nx-27017."""
    args = live.args
    rates = sorted(args.handoff_rates)
    print(f"\n== pipeline-only (d2): {args.handoff_processes} hand-off processes (Spool + Shipper each), "
          f"enrich + store workers (2 processes each), steps {', '.join(f'{r:.0f}' for r in rates)} events/s "
          f"x {args.handoff_step_seconds:.0f} s", flush=True)
    flush_redis(live.broker)
    live.pids.pop("web", None)
    for name in ("enrich", "store"):  # the HTTP ladder's worker logs: the new workers' start empty
        log = live.tmp / f"worker-{name}.log"
        if log.exists():
            log.rename(live.tmp / f"worker-{name}-http.log")
    start_nx(live, "nx-handoff")
    workers = start_workers(live)
    db = _db(live, MONGO_DB)
    began = time.time()
    warm, warm_records = measured(live, handoff_load(live, "pw", rates[0], args.warmup_seconds, seed=1))[:2]
    drain(db, [({"tag": "pw", "rate": None, "seconds": args.warmup_seconds}, warm_records)], began, 60, 10)
    steps = []
    for rate in rates:
        steps.append(handoff_step(live, db, rate, args.handoff_step_seconds, f"p{int(rate)}"))
        if not steps[-1][0]["kept_up"] and not args.keep_going:
            break
    waited, left = drain(db, steps, began, args.drain_max, args.drain_stall)
    print(f"  final drain: {waited:.0f} s, {left} still missing", flush=True)
    docs, exits = fetch_docs(db, began, dates=True)
    dead = db["dead_letters"].estimated_document_count()
    db.client.close()
    for proc in workers:
        live.procs.stop(proc)
    live.pids.pop("enrich", None)
    live.pids.pop("store", None)
    out = [conclude_handoff(step, records, docs, exits) for step, records in steps]
    worker_figures(live, out)
    best = highest_sustained(out)
    return {"steps": out, "final_drain_s": waited, "missing_after_drain": left, "dead_letters": dead,
            "sustained_rate": best["rate"] if best else None, "sustained_events_per_s": handoff_sustained(out),
            "warmup": warm, "store_log_flush_lines": sample_flush_lines(live.tmp / "worker-store.log")}


def run_ceiling(live: Live) -> dict[str, Any]:
    args = live.args
    print(f"\n== store ceiling: store_writes alone, {args.ceiling_page_views} page views' writes", flush=True)
    start_nx(live, "nx-ceiling")
    log = live.tmp / "ceiling.log"
    cmd = [PYTHON, "-m", "loadtest.store_ceiling", "--mongo", live.mongo, "--page-views",
           str(args.ceiling_page_views), "--mmdb", live.mmdb]
    proc = live.procs.start(Proc("ceiling", cmd, env={"PYTHONPATH": str(ROOT)}, log=log))
    machine0 = machine_cpu_snapshot()
    proc.popen.wait(600)
    machine1 = machine_cpu_snapshot()
    live.procs.stop(proc)
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"store ceiling failed:\n{log_tail(log)}")
    result = json.loads(lines[-1])
    result["machine"] = machine_cpu_delta(machine0, machine1, {os.getpid(), *process_tree(live.nx.pid)},
                                          extra_ours_s=result.get("cpu_seconds") or 0.0)
    print(f"  mix {fmt_num(result['mix']['events_per_s'])} events/s, inserts only "
          f"{fmt_num(result['inserts']['events_per_s'])} events/s", flush=True)
    return result


# ================================================================== output


STEPS_NOTES = """\
  events/s: page-view documents + tracker events answered 204, per second of the step (or of the time the
    site took to answer it, when longer); the original design had no tracker: page views only
  lost: answered but not stored after the drain wait / documents expected (a redirect is two);
    dup: documents beyond that; tracker lost: tracker events answered 204 but not in MongoDB
  HTTP p99: page views, from their scheduled time; other load: cores used by processes outside this benchmark"""


HANDOFF_NOTES = """\
  rate: events/s asked for; offered: page-view + tracker events handed off (Spool.append) per second of the
    step; stored: of those, stored (page views inserted, tracker events merged or in exit_link_logs) after
    the step's settle wait, per second of the step; lost: page views not stored / handed off; late p99: the
    hand-off processes' own lateness (page views appended after their scheduled time)"""


def print_report(results: dict[str, Any]) -> None:
    w = results["web_workers"]
    if results.get("capacity"):
        print(f"\nThe site alone (closed loop, {results['args']['concurrency']} visitors, W={w}, "
              f"{results['args']['capacity_seconds']:.0f} s each)")
        print(capacity_table(results["capacity"]))
    runs = {"eventlog": results.get("eventlog", {}).get("steps", []), **(results.get("original") or {})}
    print(f"\nStepped load, W={w} web processes, {results['args']['step_seconds']:.0f} s per step "
          f"(lag over the last half of each step)")
    print(steps_table(runs))
    print(STEPS_NOTES)
    noisy = sorted({s["rate"] for steps in runs.values() for s in steps
                    if ((s.get("machine") or {}).get("other_cores") or 0) > 0.5})
    if noisy:
        print(f"  WARNING: other processes used more than half a core during the steps at "
              f"{', '.join(f'{r:.0f}' for r in noisy)} pv/s "
              "(shared machine): there the site and the pipeline had less CPU than the table suggests")
    steps = runs["eventlog"]
    if steps:
        print("\neventlog per step (CPU in cores; queues at the end of the step; worker log lines in the step and "
              "its drain)")
        print(pipeline_table(steps))
    best = highest_sustained(steps)
    sustained = best["summary"]["events_per_s"] if best else None
    print(f"\n{ladder_note(steps)}")
    print(f"highest rate sustained (lag p99 < 2 s, nothing lost or duplicated): "
          f"{fmt_num(best['rate']) + ' page views/s = ' + fmt_num(sustained) + ' events/s' if best else 'none'}")
    handoff = (results.get("handoff") or {}).get("steps") or []
    if handoff:
        print(f"\n(d2) the same mix without HTTP: {results['args']['handoff_processes']} hand-off processes "
              f"(Spool + Shipper, publish_batch raw, ship every {results['args']['ship_interval']} ms / "
              f"{results['args']['ship_batch']} events), the same workers, a fresh nx-27017; "
              f"{results['args']['handoff_step_seconds']:.0f} s per step (lag over the last half of each step)")
        print(handoff_table(handoff))
        print(HANDOFF_NOTES)
        print("\npipeline-only per step (CPU in cores, loadgen = the hand-off processes; queues at the end of "
              "the step; worker log lines in the step and its drain)")
        print(pipeline_table(handoff))
        print(f"\n{handoff_note(handoff)}")
        d2 = handoff_sustained(handoff)
        print(f"highest sustained without HTTP (lag p99 < 2 s, everything stored once): "
              f"{fmt_num(d2) + ' events/s' if d2 is not None else 'none'}")
        dead = results["handoff"].get("dead_letters")
        if dead:
            print(f"  WARNING: {dead} dead letters in the d2 database")
    if results.get("store_ceiling"):
        print("\nThe store's ceiling for this mix (fresh nx-27017, one process, batches of "
              f"{results['store_ceiling']['batch']})")
        print(ceiling_table(results["store_ceiling"], sustained, handoff_sustained(handoff) if handoff else None))
        other = (results["store_ceiling"].get("machine") or {}).get("other_cores")
        print(f"  other load meanwhile: {fmt_num(other, 2)} cores (the ceiling moves with it: nx-27017 is CPU-bound)")
    lines = results.get("eventlog", {}).get("store_log_flush_lines") or []
    if lines:
        print("\nstore worker flushes (sample of its log):")
        for line in lines:
            print("  " + line[:200])


def write_results(payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"site-{stamp}.json"
    text = json.dumps(payload, indent=2, default=str)
    path.write_text(text)
    tmp = RESULTS / f"site-latest.json.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, RESULTS / "site-latest.json")  # readers never see half a file
    return path


def code_version() -> dict[str, Any]:
    """The commit and whether the store stage's files differ from it (read-only git)."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD").strip(),
            "changed": git("status", "--porcelain", "--", "tasks", "pipeline", "celeryconfig.py").splitlines()}


def pipeline_settings() -> dict[str, Any]:
    from pipeline.config import load_settings

    s = load_settings()
    values: dict[str, Any] = {k: getattr(s, k) for k in ("batch_size", "flush_interval", "ship_batch",
                                                         "ship_interval")}
    try:
        import celeryconfig

        values["worker_prefetch_multiplier"] = getattr(celeryconfig, "worker_prefetch_multiplier", None)
    except Exception as exc:  # noqa: BLE001 - a half-edited config must not stop the report
        values["celeryconfig_error"] = repr(exc)
    return values


# ================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run (about 5 minutes)")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn worker processes, W >= 4 (default 4)")
    parser.add_argument("--rates", help="page views/s per step (default 10,20,40,80,120,160,200,250,300,400,500; "
                        "quick 10,40,80)")
    parser.add_argument("--step-seconds", type=float, help="seconds per step (default 20; quick 6)")
    parser.add_argument("--capacity-seconds", type=float, help="closed-loop seconds per variant (default 10; quick 4)")
    parser.add_argument("--warmup-seconds", type=float, help="unmeasured warm-ups (default 4; quick 2)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed loop: visitors at once")
    parser.add_argument("--target-rate", type=float, help="target step's rate (default: half the capacity "
                        "without the middleware)")
    parser.add_argument("--keep-going", action="store_true", help="run every step, also after one fell behind")
    parser.add_argument("--settle-max", type=float, help="max wait after a step for its events (default 20; quick 10)")
    parser.add_argument("--settle-stall", type=float, default=5.0, help="... or until nothing arrived for this long")
    parser.add_argument("--drain-max", type=float, help="max drain wait for a backlog (default 180; quick 60)")
    parser.add_argument("--drain-stall", type=float, default=15.0)
    parser.add_argument("--ceiling-page-views", type=int, help="store ceiling: page views' writes (default 8000; "
                        "quick 2000)")
    parser.add_argument("--handoff-rates", help="(d2) pipeline-only: events/s per step (default 100,200,400,600,"
                        "800,1000,1200,1400,1600,1800,2000,2400,2800,3200,3600,4000; quick 100,400,800)")
    parser.add_argument("--handoff-step-seconds", type=float, help="(d2) seconds per step (default 15; quick 5)")
    parser.add_argument("--handoff-processes", type=int, default=4, help="(d2) hand-off processes (default 4)")
    parser.add_argument("--ship-interval", type=int, default=200, help="(d2) EVENTLOG_SHIP_INTERVAL, ms (the site's)")
    parser.add_argument("--ship-batch", type=int, default=500, help="(d2) EVENTLOG_SHIP_BATCH (the site's)")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-eventlog", action="store_true", help="no HTTP ladder (nor the original's)")
    parser.add_argument("--skip-handoff", action="store_true", help="no pipeline-only ladder (d2)")
    parser.add_argument("--skip-original", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server (no db number)")
    parser.add_argument("--redis-db", type=int, default=12, help="Redis db (flushed; never 0 or 9)")
    parser.add_argument("--keep-logs", default="", help="directory to copy every process's log into")
    args = parser.parse_args(argv)
    full, quick = {"rates": "10,20,40,80,120,160,200,250,300,400,500", "step_seconds": 20.0,
                   "capacity_seconds": 10.0, "warmup_seconds": 4.0, "settle_max": 20.0, "drain_max": 180.0,
                   "ceiling_page_views": 8000,
                   "handoff_rates": "100,200,400,600,800,1000,1200,1400,1600,1800,2000,2400,2800,3200,3600,4000",
                   "handoff_step_seconds": 15.0}, {"rates": "10,40,80", "step_seconds": 6.0, "capacity_seconds": 4.0,
                                                   "warmup_seconds": 2.0, "settle_max": 10.0, "drain_max": 60.0,
                                                   "ceiling_page_views": 2000, "handoff_rates": "100,400,800",
                                                   "handoff_step_seconds": 5.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.rates = [float(r) for r in str(args.rates).split(",") if r.strip()]
    args.handoff_rates = [float(r) for r in str(args.handoff_rates).split(",") if r.strip()]
    if not args.handoff_rates or min(args.handoff_rates) <= 0 or args.handoff_processes < 1:
        parser.error("--handoff-rates: positive events/s; --handoff-processes >= 1")
    if args.web_workers < 4:
        parser.error("--web-workers: the benchmark is defined for W >= 4")
    if args.redis_db in (0, 9):
        parser.error("--redis-db: 0 is the stack's and 9 the tests'")
    if not args.rates or min(args.rates) <= 0:
        parser.error("--rates: positive page views/s")
    return args


def prepare(args: argparse.Namespace, procs: Procs, tmp: Path) -> Live:
    """Redis db flushed, the demo's user database, a fresh nx-27017."""
    broker = f"{args.redis.rstrip('/')}/{args.redis_db}"
    flush_redis(broker)
    mmdb = geolite_city_db() or str(GEOIP_TEST_DB)
    live = Live(args, procs, tmp, broker, tmp / "var", mmdb, tmp / "learners.json")
    live.var_dir.mkdir(parents=True)
    env = {"EVENTLOG_VAR_DIR": str(live.var_dir), "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "demo.settings"}
    manage("migrate", "--noinput", env=env)
    manage("seed_demo", env=env)
    start_nx(live, "nx-eventlog")
    return live


def run_all(args: argparse.Namespace, procs: Procs, tmp: Path) -> dict[str, Any]:
    live = prepare(args, procs, tmp)
    results: dict[str, Any] = {"web_workers": args.web_workers}
    if not args.skip_capacity:
        results["capacity"] = run_capacity(live)
    off = (results.get("capacity") or {}).get("off", {}).get("page_views_per_s")
    target = args.target_rate or (round(off / 2) if off else None)
    if not args.skip_eventlog:
        results["eventlog"] = run_eventlog(live, target)
        if not args.skip_original:
            plan = [(s["rate"], s["target"]) for s in results["eventlog"]["steps"]]
            results["original"] = run_original(live, plan)
    if not args.skip_handoff:
        results["handoff"] = run_handoff(live)  # just before the ceiling: the machine's load alike
    if not args.skip_ceiling:
        results["store_ceiling"] = run_ceiling(live)
    results["learners_logged_in"] = len(json.loads(live.learners.read_text())) if live.learners.exists() else 0
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def _terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    print(f"eventlog site bench{' (quick)' if args.quick else ''}: W={args.web_workers}, steps "
          f"{', '.join(f'{r:.0f}' for r in args.rates)} page views/s x {args.step_seconds:.0f} s; "
          f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="eventlog-site-bench-"))
    started, load_start = datetime.now(UTC), os.getloadavg()
    try:
        results = run_all(args, procs, tmp)
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}): stopping every process this run started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        try:
            flush_redis(f"{args.redis.rstrip('/')}/{args.redis_db}")
        except redis.RedisError as exc:
            print(f"could not flush the Redis db: {exc!r}", file=sys.stderr)
        if args.keep_logs:
            dest = Path(args.keep_logs)
            dest.mkdir(parents=True, exist_ok=True)
            for path in tmp.glob("*.log"):
                shutil.copy(path, dest / path.name)
        shutil.rmtree(tmp, ignore_errors=True)
    results.update(started=started.isoformat(), finished=datetime.now(UTC).isoformat(), args=vars(args),
                   machine={"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
                   code=code_version(), eventlog_settings=pipeline_settings())
    results["targets"] = evaluate(results)
    print_report(results)
    print("\nTargets (information, not asserts):")
    for check in results["targets"]:
        print(f"  {check_word(check)}  {check['name']}: {check['value']}")
    path = write_results(results)
    print(f"\nresults: {path.relative_to(ROOT)} (and {(RESULTS / 'site-latest.json').relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
