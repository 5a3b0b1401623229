"""Real processes killed with SIGKILL under steady traffic: nothing answered is lost or doubled.

One after another, while page views flow through a 3-process demo site: the enrich
worker, the store worker (mid-batch: at this rate it always holds one), the
Mongo-wire server (restarted on the same port and data file), one web process
(gunicorn starts another; the spool of the dead one is adopted), and the broker
itself (a private redis-server on its own port, restarted on the same port and AOF).
For RabbitMQ, whose server the machine shares, the broker's connections are cut
by a TCP relay instead. Every page view that got a complete HTTP answer must then
be stored exactly once within a bounded time.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pymongo
import pytest

from deploy.stack import Proc
from tests.helpers.pipeline import Pipeline, purge_queues, wait_until
from tests.helpers.tcpproxy import TcpProxy
from tests.helpers.traffic import SteadyTraffic, stored_counts

pytestmark = pytest.mark.integration

RATE = 25  # page views a second: steady, every stage busy, room on 2 shared cores
OUTAGE = 5  # seconds a killed server stays down
DRAIN_TIMEOUT = 180  # seconds after the last fault for everything answered to be stored
# Short, so that messages a killed worker held come back within the test (Redis
# transport; the default is 300 s). Longer than any batch legitimately stays unacked.
VISIBILITY_TIMEOUT = 15
# When the web processes check that what they shipped was stored (default 360 s): after
# the visibility timeout, so that only what no one holds any more is shipped again. A
# worker SIGKILLed between taking a message off a Redis list and recording it as
# unacknowledged loses it (kombu's BRPOP); this check is what brings it back.
RECONCILE_AFTER = 30


def gunicorn_workers(master: Proc) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


class FaultRun:
    """Traffic plus the faults, with what was answered during each fault phase."""

    def __init__(self, pipeline: Pipeline, mongo_url: str) -> None:
        self.pipeline = pipeline
        self.tag = uuid.uuid4().hex[:12]
        self.traffic = SteadyTraffic(pipeline.url(""), self.tag, RATE)
        self.phases: list[tuple[str, int]] = []  # (fault, answered when it struck)
        self.client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True)

    def fault(self, name: str, action: Callable[[], None], settle: float = 4.0) -> None:
        self.phases.append((name, self.traffic.answered_count()))
        action()
        time.sleep(settle)

    def finish(self) -> dict[str, dict[str, int]]:
        self.traffic.stop()
        answered = list(self.traffic.answered)
        logs = self.client[self.pipeline.mongo_db].website_logs

        def all_stored() -> bool:
            try:
                return set(stored_counts(logs, self.tag)) >= set(answered)
            except Exception:  # noqa: BLE001 - the store may be restarting
                return False

        try:
            wait_until(all_stored, DRAIN_TIMEOUT, "every answered page view stored", interval=1.0)
        except AssertionError:
            counts = stored_counts(logs, self.tag)
            missing = [(n, r) for n, r in enumerate(answered) if not counts[r]]
            print("fault phases (answered before each):", self.phases)
            print("missing (answer index, referrer):", missing)
            raise
        time.sleep(3)  # a late redelivery would show up as a duplicate now
        counts = stored_counts(logs, self.tag)
        figures: dict[str, dict[str, int]] = {}
        bounds = [*self.phases, ("end", len(answered))]
        for (name, start), (_, end) in zip(bounds, bounds[1:], strict=False):
            during = answered[start:end]
            figures[name] = {"answered": len(during), "stored": sum(1 for r in during if counts[r] >= 1),
                             "duplicated": sum(counts[r] - 1 for r in during if counts[r] > 1)}
        figures["all"] = {"answered": len(answered), "stored": sum(1 for r in answered if counts[r]),
                          "duplicated": sum(n - 1 for n in counts.values() if n > 1),
                          "not_answered": sum(self.traffic.failed.values())}
        respooled = sum(int(n) for n in re.findall(r"(\d+) shipped events never reached the store",
                                                   self.pipeline.logs_full()))
        figures["all"]["respooled_by_the_spool_check"] = respooled
        print("fault test figures:", json.dumps(figures))
        return figures


def closed(pipeline: Pipeline) -> None:
    """Stop the test's processes, printing their logs when the test failed (pytest shows them)."""
    if sys.exc_info()[0] is not None:
        print(pipeline.logs())
    pipeline.close()


def check(figures: dict[str, dict[str, int]]) -> None:
    for name, row in figures.items():
        assert row["stored"] == row["answered"], (name, figures)
        assert row["duplicated"] == 0, (name, figures)
    assert figures["all"]["answered"] > RATE * 20, figures


def test_sigkill_every_process_under_load_redis(tmp_path, demo_var_dir, private_mongo, private_redis) -> None:  # noqa: ANN001
    broker = f"redis://127.0.0.1:{private_redis.port}/0"
    mongo_url = f"mongodb://127.0.0.1:{private_mongo.port}"
    pipeline = Pipeline(tmp_path / "p", broker, mongo_url, "logs", demo_var_dir,
                        visibility_timeout=VISIBILITY_TIMEOUT, reconcile_after=RECONCILE_AFTER)
    pipeline.tmp.mkdir()
    try:
        pipeline.worker(queues="eventlog.enrich")
        store = pipeline.worker(queues="eventlog.store")
        web = pipeline.web(workers=3)
        run = FaultRun(pipeline, mongo_url)
        enrich = pipeline.procs[0]
        run.traffic.start()
        time.sleep(4)

        def restart_worker(proc: Proc, queues: str) -> None:
            proc.kill(signal.SIGKILL)
            proc.popen.wait(10)
            time.sleep(1)
            pipeline.worker(queues=queues)

        run.fault("enrich worker", lambda: restart_worker(enrich, "eventlog.enrich"))
        run.fault("store worker", lambda: restart_worker(store, "eventlog.store"))

        def restart_mongo() -> None:
            private_mongo.kill()
            time.sleep(OUTAGE)
            private_mongo.start()

        run.fault("mongo-wire server", restart_mongo)
        run.fault("web process", lambda: subprocess.run(["kill", "-9", str(gunicorn_workers(web)[0])], check=True))

        def restart_redis() -> None:
            private_redis.kill()
            time.sleep(OUTAGE)
            private_redis.start()

        run.fault("broker (redis-server)", restart_redis, settle=8.0)
        check(run.finish())
    finally:
        closed(pipeline)


def test_broker_connections_cut_under_load_rabbitmq(tmp_path, demo_var_dir, private_mongo, rabbit_url) -> None:  # noqa: ANN001
    purge_queues(rabbit_url)
    relay = TcpProxy("127.0.0.1", 5672)
    broker = relay.url("amqp", "//").replace("amqp://", "amqp://guest:guest@")
    mongo_url = f"mongodb://127.0.0.1:{private_mongo.port}"
    pipeline = Pipeline(tmp_path / "p", broker, mongo_url, "logs", demo_var_dir, reconcile_after=RECONCILE_AFTER)
    pipeline.tmp.mkdir()
    try:
        pipeline.worker(queues="eventlog.enrich")
        pipeline.worker(queues="eventlog.store")
        pipeline.web(workers=3)
        run = FaultRun(pipeline, mongo_url)
        run.traffic.start()
        time.sleep(4)

        def cut() -> None:
            relay.cut()
            time.sleep(OUTAGE)
            relay.start()

        run.fault("broker connections cut", cut, settle=6.0)
        run.fault("broker connections cut again", cut, settle=6.0)
        check(run.finish())
    finally:
        closed(pipeline)
        relay.cut()
