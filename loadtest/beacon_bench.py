"""Beacon endpoint under concurrent load, against a plain Django 204 view.

    python -m loadtest.beacon_bench [--seconds 10] [--concurrency 16] [--workers 2]

Serves loadtest.beacon_site with gunicorn (sync workers, as a site would), then a
load generator in a *second process* (aiohttp, keep-alive, bounded in time,
127.0.0.1 only) posts tracker events to collect/ and, in the same run, to the
plain view. The beacon's shipper publishes to a real Redis (a database of its
own); afterwards the published events are counted against the 204s answered.
Prints a table and writes loadtest/results/beacon-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis

from deploy.stack import PYTHON, ROOT, Proc, free_port, wait_for_port

RESULTS = ROOT / "loadtest" / "results"


# ------------------------------------------------------------------ the load generator (child process)


def _event_body() -> bytes:
    pv = uuid.uuid4().hex
    event = {"kind": "visit_end", "event_id": uuid.uuid4().hex, "page_view_id": pv, "path": "/watch/BASH/x/English/",
             "ts": int(time.time() * 1000), "duration_ms": 41_000, "title": "Basics of Shell Scripting"}
    return json.dumps({"events": [event]}).encode()


async def _client(url: str, seconds: float, concurrency: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json", "Origin": "http://127.0.0.1"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                async with session.post(url, data=_event_body(), headers=headers) as answer:
                    await answer.read()
                    status = answer.status
            except aiohttp.ClientError:
                status = 0  # connection refused or reset: counted, not timed
            statuses[status] = statuses.get(status, 0) + 1
            if status:
                latencies.append(time.perf_counter() - started)

    # gunicorn's sync workers close every connection after answering (no keep-alive).
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "requests": len(latencies), "seconds": round(elapsed, 2), "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def client_main(url: str, seconds: float, concurrency: int) -> None:
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit("the load generator only targets 127.0.0.1")
    print(json.dumps(asyncio.run(_client(url, seconds, concurrency))))


# ------------------------------------------------------------------ the run


def _load(url: str, seconds: float, concurrency: int) -> dict:
    out = subprocess.run([PYTHON, "-m", "loadtest.beacon_bench", "--client", url, "--seconds", str(seconds),
                          "--concurrency", str(concurrency)], cwd=ROOT, capture_output=True, text=True,
                         timeout=seconds + 60)
    if out.returncode:
        raise RuntimeError(f"load generator failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _published_events(broker: str) -> int:
    """Events inside the Celery messages the shippers published (kombu's Redis layout)."""
    r = redis.Redis.from_url(broker)
    total = 0
    for raw in r.lrange("eventlog.enrich", 0, -1):
        body = json.loads(base64.b64decode(json.loads(raw)["body"]))
        total += len(body[0][0])
    return total


def run(seconds: float, concurrency: int, workers: int, broker: str) -> dict:
    redis.Redis.from_url(broker).flushdb()
    port = free_port()
    spool = tempfile.mkdtemp(prefix="eventlog-beacon-bench-")
    env = {"EVENTLOG_BROKER_URL": broker, "EVENTLOG_SPOOL_DIR": spool, "PYTHONPATH": str(ROOT),
           "DJANGO_SETTINGS_MODULE": ""}
    web = Proc("web", [str(Path(PYTHON).parent / "gunicorn"), "loadtest.beacon_site:application",
                       "-b", f"127.0.0.1:{port}", "-w", str(workers)], env=env).start()
    try:
        wait_for_port("127.0.0.1", port, 30, "gunicorn")
        base = f"http://127.0.0.1:{port}"
        _load(f"{base}/noop/", 2, concurrency)  # warm both paths up
        warm = _load(f"{base}/eventlog/collect/", 2, concurrency)
        plain = _load(f"{base}/noop/", seconds, concurrency)
        beacon = _load(f"{base}/eventlog/collect/", seconds, concurrency)
    finally:
        web.stop()  # SIGTERM: each worker's shipper drains its spool at exit
    accepted = beacon["statuses"].get("204", 0) + warm["statuses"].get("204", 0)
    return {"plain_204_view": plain, "beacon": beacon, "beacon_204_answers": accepted,
            "beacon_events_published": _published_events(broker)}


def print_table(result: dict) -> None:
    plain, beacon = result["plain_204_view"], result["beacon"]
    print(f"\n{'endpoint':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}  statuses")
    for name, row in (("plain Django view (204)", plain), ("eventlog collect/ (204)", beacon)):
        print(f"{name:<28}{row['rps']:>10}{row['p50_ms']:>10}{row['p99_ms']:>10}  {row['statuses']}")
    print(f"\nbeacon / plain: {beacon['rps'] / plain['rps']:.2f}x requests/s, "
          f"p99 {beacon['p99_ms'] / plain['p99_ms']:.2f}x")
    print(f"events published to the broker: {result['beacon_events_published']} "
          f"of {result['beacon_204_answers']} answered 204 (warm-up included)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        client_main(args.client, args.seconds, args.concurrency)
        return 0
    result = run(args.seconds, args.concurrency, args.workers, args.broker)
    result.update(started=datetime.now(UTC).isoformat(), args=vars(args))
    print_table(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"beacon-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
