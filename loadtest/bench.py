"""`make bench`: eventlog's real path against the two baselines, in one run.

    python -m loadtest.bench                # the full run (4-6 minutes on 2 cores)
    python -m loadtest.bench --quick        # a smoke run (about 2 minutes)
    python -m loadtest.bench --events 200000 --skip-rabbit
    python -m loadtest.bench --only eventlog --profile /tmp/prof   # py-spy the real path

Scenarios, each on a fresh nx-27017 (own port, own temporary data directory) and a
flushed Redis database (db 11, never 0) / purged RabbitMQ queues:

  (a) original   producers LPUSH JSON onto a Redis list; a polling consumer process
                 stores 100 at a time (LRANGE + LTRIM + insert_many), sleeping 5 s
                 (the original setting) or not at all between polls
  (b) naive      one Celery task per event (insert_one); a real worker, 2 processes
  (c) eventlog   the hook's hand-off (Spool.append, the real Shipper, publish_batch)
                 in a load-generator process; the real enrich + store workers
                 (deploy.stack.worker_proc, 2 pool processes in all)

Each scenario runs three phases, each with its own load-generator process: a short
unmeasured warm-up, a paced one (--rate events/s for --lag-seconds) for the hand-off
-> stored lag, and an as-fast-as-possible one (a fixed number of events) for
sustained throughput, first hand-off to last stored. Lost and duplicated events are
counted in MongoDB by event id. Worker memory is read from /proc (the worker and its
pool processes) before the first phase and after the last; CPU per component and
the load other users put on the (shared) machine are recorded for every phase.
Then the hook's added time per request is measured on Django's WSGI handler
(loadtest.hook).

Results: tables on stdout, loadtest/results/bench-<UTC>.json and latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymongo
import redis

from deploy.stack import BIN, Proc, free_port, nx_proc, wait_for_port, worker_proc
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
    tree_memory,
)

RESULTS = Path(__file__).resolve().parent / "results"
ENRICH_QUEUE, STORE_QUEUE = "eventlog.enrich", "eventlog.store"
NAIVE_QUEUE = "loadtest.naive"
ORIGINAL_LIST = "middleware_log"
MONGO_DB = "bench"


@dataclass
class Scenario:
    key: str
    label: str
    design: str  # original | naive | eventlog
    broker: str  # redis | rabbitmq
    events: int  # events of the throughput phase
    poll: float = 0.0  # original consumer's sleep between polls
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def id_field(self) -> str:
        return "_id" if self.design == "eventlog" else "event_id"


class Procs:
    """Every process this run starts, stopped in reverse order whatever happens."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, proc: Proc) -> Proc:
        proc.start()
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop(timeout=15)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            try:
                proc.stop(timeout=15)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                print(f"  could not stop {proc.name}: {exc}", file=sys.stderr)
        self.procs.clear()


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for_text(path: Path, pattern: str, timeout: float, proc: Proc) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and pattern in path.read_text(errors="replace"):
            return
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start-up:\n{log_tail(path)}")
        time.sleep(0.2)
    raise TimeoutError(f"{proc.name} not ready within {timeout:.0f}s:\n{log_tail(path)}")


# ------------------------------------------------------------------ brokers


def redis_url(args: argparse.Namespace, db: int) -> str:
    return f"{args.redis.rstrip('/')}/{db}"


def flush_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def purge_rabbit(url: str, queues: list[str]) -> dict[str, int]:
    """Purge our queues; return the consumers already attached to each (should be 0)."""
    from kombu import Connection

    consumers: dict[str, int] = {}
    with Connection(url, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=2)
        for queue in queues:
            channel = conn.channel()
            try:
                _, _, count = channel.queue_declare(queue, passive=True)
                consumers[queue] = count
                channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - queue not declared yet: nothing to purge
                consumers[queue] = 0
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001
                    pass
    return consumers


def reset_broker(args: argparse.Namespace, sc: Scenario) -> tuple[str, dict[str, int]]:
    if sc.broker == "redis":
        url = redis_url(args, args.redis_db)
        flush_redis(url)
        return url, {}
    queues = [NAIVE_QUEUE] if sc.design == "naive" else [ENRICH_QUEUE, STORE_QUEUE]
    return args.rabbit, purge_rabbit(args.rabbit, queues)


# ----------------------------------------------------------------- workers


def start_consumers(args: argparse.Namespace, sc: Scenario, procs: Procs, broker: str, mongo: str,
                    tmp: Path) -> list[Proc]:
    log = tmp / f"{sc.key}-worker.log"
    if sc.design == "original":
        cmd = [PYTHON, "-m", "loadtest.baselines", "--redis", broker, "--mongo", mongo, "--db", MONGO_DB,
               "--interval", str(sc.poll), "--max-seconds", str(args.phase_timeout * 4)]
        proc = procs.start(Proc("original-consumer", cmd, env={"PYTHONPATH": str(ROOT)}, log=log))
        wait_for_text(log, "original consumer ready", 60, proc)
        return [proc]
    if sc.design == "naive":
        env = {"NAIVE_BROKER_URL": broker, "NAIVE_MONGO_URL": mongo, "NAIVE_MONGO_DB": MONGO_DB,
               "PYTHONPATH": str(ROOT)}
        cmd = [str(BIN / "celery"), "-A", "loadtest.naive_app", "worker", "-Q", NAIVE_QUEUE, "-n", "naive@%h",
               "--concurrency", "2", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
        proc = procs.start(Proc("naive-worker", cmd, env=env, log=log))
        wait_for_text(log, "naive worker ready", 60, proc)
        return [proc]
    env = {
        "EVENTLOG_BROKER_URL": broker,
        "EVENTLOG_MONGO_URL": mongo,
        "EVENTLOG_MONGO_DB": MONGO_DB,
        "EVENTLOG_GEOIP_CITY_DB": str(GEOIP_TEST_DB),
        "EVENTLOG_SPOOL_DIR": str(tmp / "worker-spool"),
        "PYTHONPATH": str(ROOT),
    }
    if args.layout == "split":
        specs = [("bench-enrich", ENRICH_QUEUE, 1), ("bench-store", STORE_QUEUE, 1)]
    else:
        specs = [("bench-eventlog", f"{ENRICH_QUEUE},{STORE_QUEUE}", 2)]
    started = []
    for name, queues, concurrency in specs:
        wlog = tmp / f"{sc.key}-{name}.log"
        proc = procs.start(worker_proc(name, queues, env, concurrency, wlog))
        started.append((proc, wlog))
    for proc, wlog in started:
        wait_for_text(wlog, " ready.", 90, proc)
    return [p for p, _ in started]


def worker_logs(sc: Scenario, tmp: Path) -> list[Path]:
    return sorted(tmp.glob(f"{sc.key}-*.log"))


# ------------------------------------------------------------------- phases


def _collection(mongo: str) -> pymongo.collection.Collection:
    return pymongo.MongoClient(mongo, tz_aware=True)[MONGO_DB]["website_logs"]


def _as_seconds(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


@dataclass
class Live:
    """What a running scenario has: broker, store, scratch directory, process ids."""

    broker: str
    mongo: str
    tmp: Path
    worker_pids: list[int]
    nx_pid: int


def run_phase(args: argparse.Namespace, sc: Scenario, live: Live, name: str, events: int, rate: float,
              procs: Procs) -> dict[str, Any]:
    broker, mongo, tmp = live.broker, live.mongo, live.tmp
    coll = _collection(mongo)
    base = coll.estimated_document_count()
    cpu0 = tree_cpu(live.worker_pids), tree_cpu([live.nx_pid])
    machine0 = machine_cpu_snapshot()
    started = time.time()
    spool = tmp / f"spool-{name}"
    mode = {"original": "original", "naive": "naive", "eventlog": "real"}[sc.design]
    cmd = [PYTHON, "-m", "loadtest.drive", "--mode", mode, "--broker", broker, "--events", str(events),
           "--rate", str(rate), "--threads", str(args.threads), "--spool-dir", str(spool),
           "--max-seconds", str(args.phase_timeout)]
    drive_log = tmp / f"{sc.key}-{name}-drive.log"
    driver = procs.start(Proc(f"drive-{sc.key}-{name}", cmd, env={"PYTHONPATH": str(ROOT)}, log=drive_log))
    targets = [*(("worker", p) for p in live.worker_pids), ("nx-27017", live.nx_pid), ("loadgen", driver.pid)]
    profilers = start_profilers(args, sc, name, targets, procs)

    # The original stores whole hundreds only: the remainder never reaches MongoDB.
    expected_docs = events - events % 100 if sc.design == "original" else events
    quiet = max(4.0, 2 * sc.poll + 3.0)
    last_count, last_change, driver_done, timed_out = base, started, None, False
    deadline = started + args.phase_timeout
    samples = 0
    while True:
        now = time.time()
        count = coll.estimated_document_count()
        samples += 1
        if count != last_count:
            last_count, last_change = count, now
        if driver_done is None and not driver.alive():
            driver_done = now
        if driver_done is not None and count - base >= expected_docs:
            break
        if driver_done is not None and now - max(last_change, driver_done) >= quiet:
            break
        if now > deadline:
            timed_out = True
            break
        time.sleep(0.05)
    cpu1 = tree_cpu(live.worker_pids), tree_cpu([live.nx_pid])
    machine_after = machine_cpu_snapshot()
    wall = max(1e-6, time.time() - started)
    stop_profilers(profilers, procs)
    procs.stop(driver)
    summary = _driver_summary(drive_log)
    ours = {os.getpid(), *(p for w in [*live.worker_pids, live.nx_pid] for p in process_tree(w))}
    machine = machine_cpu_delta(machine0, machine_after, ours, extra_ours_s=summary.get("cpu_seconds") or 0.0)
    leftover = None
    if sc.design == "original":
        client = redis.Redis.from_url(broker)
        leftover = client.llen(ORIGINAL_LIST)
        client.delete(ORIGINAL_LIST)  # phases stay independent; what was left counts as lost
        client.close()

    # The server narrows by time (nx-27017 compares dates to the second only), the exact
    # cut is made here: phases run one after the other, each event stamped at hand-off.
    margin = started - 5.0
    since: Any = margin if sc.design != "eventlog" else datetime.fromtimestamp(margin, UTC)
    fields = {sc.id_field: 1, "datetime": 1, "stored_at": 1}
    docs = [doc for doc in coll.find({"datetime": {"$gte": since}}, fields)
            if _as_seconds(doc["datetime"]) >= started]
    first_stored: dict[str, float] = {}
    sent_at: dict[str, float] = {}
    per_id = Counter()
    for doc in docs:
        key = doc[sc.id_field]
        per_id[key] += 1
        stored = _as_seconds(doc["stored_at"])
        if key not in first_stored or stored < first_stored[key]:
            first_stored[key] = stored
            sent_at[key] = _as_seconds(doc["datetime"])
    lags = [first_stored[k] - sent_at[k] for k in first_stored]
    if args.keep_logs:  # per-event hand-off and store times, for a closer look
        rows = sorted((sent_at[k], first_stored[k]) for k in first_stored)
        (tmp / f"{sc.key}-{name}-times.log").write_text("".join(f"{a:.3f} {b:.3f}\n" for a, b in rows))
    distinct = len(per_id)
    first_handoff = summary.get("first_handoff") or started
    elapsed = max(1e-6, last_change - first_handoff)
    dead = coll.database["dead_letters"].estimated_document_count() if sc.design == "eventlog" else 0
    coll.database.client.close()
    result = {
        "events": events,
        "rate_offered": rate or None,
        "handed_off": summary.get("handed_off"),
        "handoff_errors": summary.get("errors"),
        "handoff_seconds": round_or_none((summary.get("last_handoff") or started) - first_handoff),
        "handoff_call_us_p50": summary.get("handoff_call_us_p50"),
        "handoff_call_us_p99": summary.get("handoff_call_us_p99"),
        "stored_docs": len(docs),
        "stored_distinct": distinct,
        "lost": events - distinct,
        "duplicated": len(docs) - distinct,
        "left_in_redis_list": leftover,
        "dead_letters_total": dead,
        "first_handoff_to_last_stored_s": round(elapsed, 3),
        "events_per_s": round(distinct / elapsed, 1) if distinct else 0.0,
        "lag_p50_s": round_or_none(percentile(lags, 50)),
        "lag_p99_s": round_or_none(percentile(lags, 99)),
        "lag_max_s": round_or_none(max(lags) if lags else None),
        "lag_quantiles_s": {q: round_or_none(percentile(lags, q)) for q in (10, 25, 50, 75, 90, 95, 99)},
        "timed_out": timed_out,
        "observer_samples": samples,
        # CPU used during the phase, in cores (CPU seconds / wall seconds): where the time goes.
        "cpu_cores": {
            "workers": round((cpu1[0] - cpu0[0]) / wall, 2),
            "nx-27017": round((cpu1[1] - cpu0[1]) / wall, 2),
            "loadgen": round((summary.get("cpu_seconds") or 0.0) / wall, 2),
        },
        "phase_wall_s": round(wall, 2),
        "worker_memory_after_phase": tree_memory(live.worker_pids),
        # The machine is shared: everything that ran meanwhile (brokers, other users' jobs too).
        "machine": machine,
    }
    if profilers:
        result["profiles"] = summarize_profiles(profilers)
    return result


def _driver_summary(path: Path) -> dict[str, Any]:
    for line in reversed(path.read_text(errors="replace").splitlines() if path.exists() else []):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    print(f"  load generator gave no summary:\n{log_tail(path)}", file=sys.stderr)
    return {}


def redeliveries_absorbed(logs: list[Path]) -> int:
    """Events the store found already stored (duplicate keys treated as stored), from worker logs."""
    total = 0
    for path in logs:
        for match in re.finditer(r"\((\d+) already stored", path.read_text(errors="replace")):
            total += int(match.group(1))
    return total


# ---------------------------------------------------------------- profiling


def start_profilers(args: argparse.Namespace, sc: Scenario, phase: str, targets: list[tuple[str, int]],
                    procs: Procs) -> list[tuple[Proc, Path, str]]:
    if not args.profile or sc.design != "eventlog" or phase != "throughput":
        return []
    pyspy = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(pyspy).exists():
        print("  --profile: py-spy not found (.venv/bin/pip install py-spy)", file=sys.stderr)
        return []
    out_dir = Path(args.profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for kind, pid in targets:
        what = f"{kind}-{pid}"
        out = out_dir / f"{sc.key}-{what}.txt"
        cmd = [pyspy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--rate", "50",
               "--nonblocking", "--output", str(out)]
        started.append((procs.start(Proc(f"py-spy-{what}", cmd, log=out_dir / f"{sc.key}-{what}.log")), out, what))
    return started


def stop_profilers(profilers: list[tuple[Proc, Path, str]], procs: Procs) -> None:
    for proc, _, _ in profilers:
        if proc.alive():
            os.kill(proc.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
    for proc, _, _ in profilers:
        try:
            proc.popen.wait(20)
        except Exception:  # noqa: BLE001
            pass
        procs.stop(proc)


def summarize_profiles(profilers: list[tuple[Proc, Path, str]], top: int = 10) -> dict[str, Any]:
    """Per profiled process: samples, and the share of its samples per function, on the
    stack (inclusive; frames on nearly every stack, like the main loop, left out) and on top (self)."""
    out: dict[str, Any] = {}
    for _, path, what in profilers:
        if not path.exists():
            continue
        totals: Counter[str] = Counter()
        inclusive: dict[str, Counter[str]] = {}
        own: dict[str, Counter[str]] = {}
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            parts = stack.split(";")
            process = [f for f in parts if f.startswith("process ")]
            proc = process[-1].split(":", 1)[0].replace("process ", "pid ") if process else what
            frames = [f for f in parts if not f.startswith("process ")]
            totals[proc] += n
            own.setdefault(proc, Counter())[frames[-1] if frames else "?"] += n
            bucket = inclusive.setdefault(proc, Counter())
            for frame in set(frames):
                bucket[frame] += n
        for proc, total in totals.most_common():
            out[f"{what} {proc}"] = {
                "samples": total,
                "file": str(path),
                "inclusive": [(f, round(100 * n / total, 1)) for f, n in inclusive[proc].most_common(80)
                              if n < 0.9 * total][:top],
                "self": [(f, round(100 * n / total, 1)) for f, n in own[proc].most_common(top)],
            }
    return out


# ---------------------------------------------------------------- scenarios


def run_scenario(args: argparse.Namespace, sc: Scenario, procs: Procs) -> dict[str, Any]:
    print(f"\n== {sc.label} on {sc.broker}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"eventlog-bench-{sc.key}-"))
    started: list[Proc] = []
    try:
        broker, foreign = reset_broker(args, sc)
        if any(foreign.values()):
            print(f"  WARNING: other consumers already attached to {foreign}; they may take messages",
                  flush=True)
        port = free_port()
        nx = procs.start(nx_proc(port, tmp / "nx", log=tmp / "nx.out"))
        started.append(nx)
        wait_for_port("127.0.0.1", port, 30, "nx-27017")
        mongo = f"mongodb://127.0.0.1:{port}"
        workers = start_consumers(args, sc, procs, broker, mongo, tmp)
        started.extend(workers)
        pids = [w.pid for w in workers]
        time.sleep(1.0)
        rss_before = tree_memory(pids)
        print(f"  workers up ({rss_before['processes']} processes, RSS {rss_before['rss_mb']} MB); "
              f"paced phase: {args.rate:.0f}/s for {args.lag_seconds:.0f}s", flush=True)
        lag_events = int(args.rate * args.lag_seconds)
        live = Live(broker, mongo, tmp, pids, nx.pid)
        # Not measured for lag: connections, lazy clients and batch timers of the workers
        # start here, as they would have long before in a running site.
        warm = run_phase(args, sc, live, "warmup", max(100, int(args.rate * args.warmup_seconds) // 100 * 100),
                         args.rate, procs)
        lag = run_phase(args, sc, live, "paced", lag_events, args.rate, procs)
        print(f"  paced: lag p50 {lag['lag_p50_s']}s p99 {lag['lag_p99_s']}s, lost {lag['lost']}, "
              f"dup {lag['duplicated']}; throughput phase: {sc.events} events", flush=True)
        tput = run_phase(args, sc, live, "throughput", sc.events, 0.0, procs)
        rss_after = tree_memory(pids)
        print(f"  throughput: {tput['events_per_s']} events/s ({tput['stored_distinct']}/{sc.events} stored in "
              f"{tput['first_handoff_to_last_stored_s']}s), lost {tput['lost']}, dup {tput['duplicated']}, "
              f"RSS {rss_before['rss_mb']} -> {rss_after['rss_mb']} MB", flush=True)
        m = tput["machine"]
        print(f"  CPU in the throughput phase (cores): {tput['cpu_cores']}; machine busy {m['busy_cores']} of "
              f"{os.cpu_count()} = bench {m['bench_cores']} + brokers {m['broker_cores']} + others {m['other_cores']}",
              flush=True)
        alive = all(w.alive() for w in workers)
        result = {
            "key": sc.key, "label": sc.label, "design": sc.design, "broker": sc.broker,
            "broker_url": broker, "poll_seconds": sc.poll if sc.design == "original" else None,
            "foreign_consumers": foreign, "warmup": warm, "paced": lag, "throughput": tput,
            "lost": warm["lost"] + lag["lost"] + tput["lost"],
            "duplicated": warm["duplicated"] + lag["duplicated"] + tput["duplicated"],
            "offered": warm["events"] + lag["events"] + tput["events"],
            "worker_memory_before": rss_before, "worker_memory_after": rss_after,
            "workers_alive_at_end": alive,
        }
        if sc.design == "eventlog":
            result["redeliveries_absorbed"] = redeliveries_absorbed(worker_logs(sc, tmp))
            result["layout"] = args.layout
        if "profiles" in tput:
            print_profiles(tput["profiles"])
        return result
    except Exception as exc:
        for path in worker_logs(sc, tmp):
            print(f"  --- {path.name}\n{log_tail(path)}", file=sys.stderr)
        print(f"  scenario failed: {exc!r}", file=sys.stderr, flush=True)
        return {"key": sc.key, "label": sc.label, "design": sc.design, "broker": sc.broker, "error": repr(exc)}
    finally:
        for proc in reversed(started):
            procs.stop(proc)
        try:
            if sc.broker == "redis":
                flush_redis(redis_url(args, args.redis_db))
            else:
                purge_rabbit(args.rabbit, [NAIVE_QUEUE] if sc.design == "naive" else [ENRICH_QUEUE, STORE_QUEUE])
        except Exception as exc:  # noqa: BLE001
            print(f"  could not clean the broker: {exc!r}", file=sys.stderr)
        if args.keep_logs:
            dest = Path(args.keep_logs) / sc.key
            dest.mkdir(parents=True, exist_ok=True)
            for path in tmp.glob("*.log"):
                shutil.copy(path, dest / path.name)
        shutil.rmtree(tmp, ignore_errors=True)


def run_hook(args: argparse.Namespace, procs: Procs) -> dict[str, Any]:
    print(f"\n== hook overhead: {args.hook_runs} runs of {args.hook_requests} requests per variant", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="eventlog-bench-hook-"))
    url = redis_url(args, args.hook_redis_db)
    try:
        flush_redis(url)
        cmd = [PYTHON, "-m", "loadtest.hook", "--requests", str(args.hook_requests), "--runs", str(args.hook_runs),
               "--broker", url, "--spool-dir", str(tmp / "spool"), "--max-seconds", str(args.phase_timeout)]
        log = tmp / "hook.log"
        machine0 = machine_cpu_snapshot()
        proc = procs.start(Proc("hook", cmd, env={"PYTHONPATH": str(ROOT)}, log=log))
        try:
            proc.popen.wait(args.phase_timeout + 30)
        except Exception:  # noqa: BLE001
            pass
        machine1 = machine_cpu_snapshot()
        procs.stop(proc)
        summary = _driver_summary(log)
        if not summary:
            return {"error": log_tail(log)}
        summary["broker_url"] = url
        summary["machine"] = machine_cpu_delta(machine0, machine1, {os.getpid()},
                                               extra_ours_s=summary.get("cpu_seconds") or 0.0)
        return summary
    finally:
        try:
            flush_redis(url)
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------- output


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def print_profiles(profiles: dict[str, Any]) -> None:
    for what, prof in profiles.items():
        print(f"  py-spy {what}: {prof['samples']} samples at 50 Hz")
        print("    on stack: " + "; ".join(f"{f} {p}%" for f, p in prof["inclusive"][:8]))
        print("    on top:   " + "; ".join(f"{f} {p}%" for f, p in prof["self"][:8]))


TABLE_NOTES = """\
  events/s: distinct events stored / (first hand-off -> last stored), events handed off as fast as possible
  lag: hand-off -> stored_at (stamped just before the bulk write), in the paced phase (after a warm-up)
  lost: never stored, of all events offered in the scenario (the original's remainder < 100 counts as lost);
  dup: extra copies stored; worker RSS: worker + pool processes (count) before and after the scenario;
  other load: CPU cores used by processes outside this benchmark (shared machine) during the throughput phase"""


def print_tables(results: list[dict[str, Any]], hook: dict[str, Any] | None) -> None:
    naive = {r["broker"]: r["throughput"]["events_per_s"] for r in results
             if r.get("design") == "naive" and "throughput" in r}
    header = (f"{'scenario':<24} {'broker':<8} {'events':>7} {'events/s':>8} {'x naive':>7} {'lag p50':>8} "
              f"{'lag p99':>8} {'lost':>11} {'dup':>5} {'worker RSS MB':>18} {'other load':>10}")
    print("\nEnd-to-end results")
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print(f"{r['label']:<30} {r['broker']:<9} FAILED: {r['error'][:80]}")
            continue
        tput, paced = r["throughput"], r["paced"]
        ratio = tput["events_per_s"] / naive[r["broker"]] if naive.get(r["broker"]) else None
        mem0, mem1 = r["worker_memory_before"], r["worker_memory_after"]
        flag = " (timed out)" if tput["timed_out"] or paced["timed_out"] else ""
        rss = f"{mem0['rss_mb']:.0f} -> {mem1['rss_mb']:.0f} ({mem1['processes']})"
        other = tput.get("machine", {}).get("other_cores")
        print(f"{r['label']:<24} {r['broker']:<8} {tput['events']:>7} {tput['events_per_s']:>8.0f} "
              f"{(f'{ratio:.1f}x' if ratio else '-'):>7} {_fmt_s(paced['lag_p50_s']):>8} "
              f"{_fmt_s(paced['lag_p99_s']):>8} {str(r['lost']) + '/' + str(r['offered']):>11} "
              f"{r['duplicated']:>5} {rss:>18} {(f'{other:.2f} cores' if other is not None else '-'):>10}{flag}")
    print(TABLE_NOTES)
    noisy = [r["key"] for r in results if "throughput" in r
             and (r["throughput"].get("machine", {}).get("other_cores") or 0) > 0.5]
    if noisy:
        print(f"  WARNING: other processes used more than half a core during {', '.join(noisy)}: "
              "throughput there is understated; compare runs on a quiet machine")
    if hook:
        print("\nHook overhead per request (Django WSGI handler in-process, trivial view, microseconds)")
        if "error" in hook:
            print(f"  FAILED: {hook['error'][:300]}")
            return
        # Medians over the runs, and the spread of the added time (one run on a shared machine
        # can be tens of microseconds off).
        head = (f"{'visitor':<12} {'without p50':>12} {'with p50':>9} {'added p50':>10} {'(min - max)':>15} "
                f"{'without p99':>12} {'with p99':>9} {'added p99':>10} {'(min - max)':>17}")
        print(head)
        print("-" * len(head))
        for visitor in ("returning", "first_visit"):
            s = hook[visitor]
            p50, p99 = s.get("spread", {}).get("added_p50_us"), s.get("spread", {}).get("added_p99_us")
            p50_range = f"({p50['min']:.1f} - {p50['max']:.1f})" if p50 else ""
            p99_range = f"({p99['min']:.1f} - {p99['max']:.1f})" if p99 else ""
            print(f"{visitor:<12} {s['without_p50_us']:>12.1f} {s['with_p50_us']:>9.1f} {s['added_p50_us']:>10.1f} "
                  f"{p50_range:>15} {s['without_p99_us']:>12.1f} {s['with_p99_us']:>9.1f} {s['added_p99_us']:>10.1f} "
                  f"{p99_range:>17}")
        other = hook.get("machine", {}).get("other_cores")
        per_run = hook.get("other_cores") or {}
        spread = f" (per run {per_run['min']} - {per_run['max']})" if per_run.get("median") is not None else ""
        runs = hook.get("runs", 1)
        runs_text = f"medians of {runs} runs" if runs > 1 else "1 run"
        print(f"({runs_text} of {hook['requests_per_variant']} requests per variant, interleaved, hook "
              f"{hook.get('position', 'innermost')}; events recorded and shipped by the hook: "
              f"{hook['events_shipped']}/{hook['events_expected']}; other load on the machine meanwhile: "
              f"{other} cores of {os.cpu_count()}{spread})")


def evaluate(results: list[dict[str, Any]], hook: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's targets, as information (the benchmark asserts nothing)."""
    by = {(r["design"], r["broker"], r.get("poll_seconds")): r for r in results if "error" not in r}
    checks: dict[str, Any] = {}
    for broker in ("redis", "rabbitmq"):
        ev, nv = by.get(("eventlog", broker, None)), by.get(("naive", broker, None))
        if ev and nv and nv["throughput"]["events_per_s"]:
            ratio = ev["throughput"]["events_per_s"] / nv["throughput"]["events_per_s"]
            checks[f"eventlog >= 5x naive ({broker})"] = {"value": round(ratio, 1), "met": ratio >= 5}
        if ev:
            checks[f"eventlog 0 lost / 0 duplicated ({broker})"] = {
                "value": f"{ev['lost']} lost, {ev['duplicated']} dup", "met": ev["lost"] == 0 and ev["duplicated"] == 0}
            p99 = ev["paced"]["lag_p99_s"]
            checks[f"eventlog lag p99 < 2 s ({broker})"] = {"value": p99, "met": p99 is not None and p99 < 2}
    ev, orig = by.get(("eventlog", "redis", None)), by.get(("original", "redis", 5.0))
    if ev and orig:
        checks["eventlog above original at 5 s (redis)"] = {
            "value": f"{ev['throughput']['events_per_s']:.0f} vs {orig['throughput']['events_per_s']:.0f}",
            "met": ev["throughput"]["events_per_s"] > orig["throughput"]["events_per_s"]}
    if hook and "returning" in hook:
        for visitor in ("returning", "first_visit"):
            s = hook[visitor]
            p50, p99 = s["added_p50_us"], s["added_p99_us"]
            checks[f"hook added p50 < 100 us ({visitor})"] = {"value": p50, "met": p50 < 100}
            checks[f"hook added p99 < 1 ms ({visitor})"] = {"value": p99, "met": p99 < 1000}
    return checks


def write_results(payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bench-{stamp}.json"
    text = json.dumps(payload, indent=2, default=str)
    tmp = RESULTS / f"latest.json.{os.getpid()}.tmp"
    path.write_text(text)
    tmp.write_text(text)
    os.replace(tmp, RESULTS / "latest.json")
    return path


# --------------------------------------------------------------------- main


def build_scenarios(args: argparse.Namespace) -> list[Scenario]:
    brokers = ["redis"] if args.skip_rabbit else ["redis", "rabbitmq"]
    scenarios = [
        Scenario("original-5s", "(a) original, poll 5 s", "original", "redis", args.baseline_events, poll=5.0),
        Scenario("original-0s", "(a) original, no delay", "original", "redis", args.baseline_events, poll=0.0),
    ]
    for broker in brokers:
        scenarios.append(Scenario(f"naive-{broker}", "(b) naive Celery", "naive", broker, args.naive_events))
    for broker in brokers:
        scenarios.append(Scenario(f"eventlog-{broker}", "(c) eventlog", "eventlog", broker, args.events))
    if args.only:
        wanted = set(args.only.split(","))
        scenarios = [s for s in scenarios if s.key in wanted or s.design in wanted]
    return scenarios


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run, about 2 minutes")
    parser.add_argument("--events", type=int, help="(c) eventlog throughput/long-run events (default 100000; "
                        "quick 10000)")
    parser.add_argument("--baseline-events", type=int, help="(a) original events (default 20000; quick 5000)")
    parser.add_argument("--naive-events", type=int, help="(b) naive Celery events (default 3000; quick 1000)")
    parser.add_argument("--rate", type=float, default=300.0, help="paced phase: events/s (all designs)")
    parser.add_argument("--lag-seconds", type=float, help="paced phase length (default 10; quick 5)")
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="unmeasured warm-up at the paced rate")
    parser.add_argument("--hook-requests", type=int, help="requests per hook variant and run (default 20000; "
                        "quick 3000)")
    parser.add_argument("--hook-runs", type=int, default=5, help="hook measurements, for the spread")
    parser.add_argument("--threads", type=int, default=4, help="load-generator threads")
    parser.add_argument("--skip-rabbit", action="store_true", help="Redis only")
    parser.add_argument("--skip-hook", action="store_true")
    parser.add_argument("--only", default="", help="comma list of scenario keys or designs "
                        "(original-5s,original-0s,naive,eventlog,naive-redis,eventlog-rabbitmq,...)")
    parser.add_argument("--layout", choices=["combined", "split"], default="combined",
                        help="(c) workers: one worker -Q enrich,store -c 2, or an enrich and a store worker -c 1 each")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server (no db number)")
    parser.add_argument("--redis-db", type=int, default=11, help="Redis db for the pipelines (flushed)")
    parser.add_argument("--hook-redis-db", type=int, default=12, help="Redis db for the hook run (flushed)")
    parser.add_argument("--rabbit", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--phase-timeout", type=float, default=300.0, help="bound on each phase, seconds")
    parser.add_argument("--profile", default="", help="directory: py-spy the (c) workers and load generator "
                        "during the throughput phase")
    parser.add_argument("--keep-logs", default="", help="directory to copy worker/driver logs into")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"events": (100_000, 10_000), "baseline_events": (20_000, 5_000), "naive_events": (3_000, 1_000),
                "lag_seconds": (10.0, 5.0), "hook_requests": (20_000, 3_000)}
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if args.redis_db == 0 or args.hook_redis_db == 0:
        parser.error("use a Redis db other than 0 (the stack's)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not GEOIP_TEST_DB.exists():
        print(f"GeoIP test database missing: {GEOIP_TEST_DB}", file=sys.stderr)
        return 2
    scenarios = build_scenarios(args)
    print(f"eventlog bench{' (quick)' if args.quick else ''}: (c) {args.events} events, (a) {args.baseline_events}, "
          f"(b) {args.naive_events}; paced {args.rate:.0f}/s x {args.lag_seconds:.0f}s; hook {args.hook_requests} "
          f"requests/variant; {args.threads} load threads; workers: 2 pool processes per design "
          f"(eventlog layout: {args.layout}); load {os.getloadavg()[0]:.2f}", flush=True)

    def _terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    procs = Procs()
    results: list[dict[str, Any]] = []
    hook: dict[str, Any] | None = None
    started_at = datetime.now(UTC)
    load_start = os.getloadavg()
    try:
        for sc in scenarios:
            results.append(run_scenario(args, sc, procs))
        if not args.skip_hook:
            hook = run_hook(args, procs)
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}): stopping every process this run started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
    from pipeline.config import load_settings

    settings = load_settings()
    payload = {
        "started": started_at.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "args": vars(args),
        "machine": {"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "eventlog_settings": {k: getattr(settings, k) for k in
                              ("batch_size", "flush_interval", "ship_batch", "ship_interval", "visibility_timeout")},
        "scenarios": results,
        "hook": hook,
    }
    payload["targets"] = evaluate(results, hook)
    print_tables(results, hook)
    print("\nTargets (information, not asserts):")
    for name, check in payload["targets"].items():
        print(f"  [{'ok' if check['met'] else '--'}] {name}: {check['value']}")
    path = write_results(payload)
    print(f"\nresults: {path.relative_to(ROOT)} (and {(RESULTS / 'latest.json').relative_to(ROOT)})")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
