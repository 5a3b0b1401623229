"""Shared pieces of the benchmarks: event builder, statistics, process memory.

No Celery or Django imports here: every benchmark process imports this module.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GEOIP_TEST_DB = ROOT.parent / "shared" / "testdata" / "geoip" / "GeoIP2-City-Test.mmdb"
PYTHON = sys.executable

# A small, realistic mix: the original site's pages, browsers and a bot, and the
# addresses of MaxMind's test database (three located, one unknown, one private).
PATHS: list[tuple[str, dict[str, str]]] = [
    ("/", {}),
    ("/watch/Python/Getting-started/English/",
     {"foss": "Python", "tutorial": "Getting-started", "language": "English"}),
    ("/watch/Scilab/Matrix-operations/Hindi/",
     {"foss": "Scilab", "tutorial": "Matrix-operations", "language": "Hindi"}),
    ("/watch/LibreOffice-Calc/Charts/Tamil/",
     {"foss": "LibreOffice-Calc", "tutorial": "Charts", "language": "Tamil"}),
    ("/tutorial-search/", {}),
    ("/cdcontent/", {}),
    ("/news/events/", {}),
    ("/accounts/login/", {}),
]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
IPS = ["81.2.69.142", "216.160.83.56", "175.16.199.0", "1.2.3.4", "10.0.0.7"]
USERS = ["AnonymousUser"] * 3 + [f"learner{i}" for i in range(1, 6)]


def new_event_id() -> str:
    """Same as pipeline.events.new_event_id (UUID4 hex), without importing pydantic."""
    return uuid.uuid4().hex


def raw_event(seq: int) -> dict[str, Any]:
    """A raw page view with exactly the fields EventLogMiddleware._record builds.

    ``datetime`` is set by the caller at the moment of the hand-off.
    """
    path, kwargs = PATHS[seq % len(PATHS)]
    return {
        "event_id": new_event_id(),
        "source": "middleware",
        "path_info": path,
        "visited_by": USERS[seq % len(USERS)],
        "user_agent": USER_AGENTS[seq % len(USER_AGENTS)],
        "ip_address": IPS[seq % len(IPS)],
        "datetime": 0.0,
        "first_time_visit": seq % 4 == 0,
        "method": "GET",
        "referrer": "https://www.google.com/" if seq % 3 == 0 else "",
        "page_title": "",
        "view_args": [],
        "view_kwargs": dict(kwargs),
        "post_data": None,
        "visitor_id": new_event_id(),
        "status_code": 200,
    }


# ------------------------------------------------------------------ statistics


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def round_or_none(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------ process memory


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.extend(int(k) for k in fh.read().split())
        except OSError:
            continue
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (bounded walk)."""
    seen: list[int] = []
    todo = [pid]
    while todo and len(seen) < 256:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo.extend(_children(current))
    return seen


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pids: list[int]) -> dict[str, Any]:
    """RSS (sum over each process tree, shared pages counted per process) and PSS, in MB."""
    procs = list(itertools.chain.from_iterable(process_tree(p) for p in pids))
    rss = sum(_status_kb(p, "VmRSS") for p in procs)
    pss = sum(_pss_kb(p) for p in procs)
    return {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1), "processes": len(procs)}


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by the live processes of these trees."""
    procs = itertools.chain.from_iterable(process_tree(p) for p in pids)
    return sum(_cpu_seconds(p) for p in procs)


def machine_cpu_snapshot() -> dict[str, Any]:
    """Busy and total CPU ticks of the machine, and CPU seconds per live process (for deltas)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    per_proc: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/comm") as fh:
                name = fh.read().strip()
        except OSError:
            continue
        per_proc[pid] = (name, _cpu_seconds(pid))
    return {"total": sum(values), "idle": idle, "procs": per_proc}


def machine_cpu_delta(before: dict[str, Any], after: dict[str, Any], ours: set[int], extra_ours_s: float = 0.0,
                      brokers: tuple[str, ...] = ("redis-server", "beam.smp"), top: int = 8) -> dict[str, Any]:
    """Cores busy machine-wide between two snapshots, split into this benchmark's processes
    (``ours`` plus ``extra_ours_s`` CPU seconds of processes that already exited), the brokers
    (shared with anyone else using them) and everything else on the machine."""
    total = after["total"] - before["total"]
    busy = total - (after["idle"] - before["idle"])
    cores = os.cpu_count() or 1
    wall = total / _TICKS / cores if total else 0.0
    by_proc: list[tuple[str, int, float]] = []
    for pid, (name, cpu) in after["procs"].items():
        old = before["procs"].get(pid)
        used = cpu - (old[1] if old and old[0] == name else 0.0)
        if used > 0:
            by_proc.append((name, pid, used))
    by_proc.sort(key=lambda item: -item[2])
    busy_s = busy / _TICKS
    ours_s = sum(u for _, pid, u in by_proc if pid in ours) + extra_ours_s
    brokers_s = sum(u for name, pid, u in by_proc if name in brokers and pid not in ours)

    def cores_of(seconds: float) -> float | None:
        return round(seconds / wall, 2) if wall else None

    return {
        "busy_cores": cores_of(busy_s),
        "bench_cores": cores_of(ours_s),
        "broker_cores": cores_of(brokers_s),
        "other_cores": cores_of(max(0.0, busy_s - ours_s - brokers_s)),
        "top_processes_cpu_s": [(name, pid, round(used, 2), pid in ours) for name, pid, used in by_proc[:top]],
    }
