"""The stages on separate hosts: web, broker, enrich, store and MongoDB each in a network
namespace of its own, page views from the test's host, links cut and healed under traffic.

Hosts (tests/helpers/netns.py): a private bridge, 10.231.<net>.0/24, nothing routed
beyond it. The broker is a private redis-server with deploy/redis.conf (AOF, fsync
always) on the broker host; the store is nx-27017 on the MongoDB host. While page views
flow, the link web <-> broker is cut (packets dropped silently, as in a partition) and
healed, then the link store <-> MongoDB. Every page view that got an answer must be
stored exactly once, with the spool's end-to-end check off, so that only the pipeline's
own hand-offs (spool, acknowledgements, retries) can account for it.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
import requests

from deploy.stack import Proc, nx_proc, redis_proc, wait_for_port, web_proc, worker_proc
from tests.helpers import netns
from tests.helpers.pipeline import Pipeline, wait_until
from tests.helpers.traffic import SteadyTraffic, stored_counts

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))]

RATE = 20  # page views a second from the test's host to the web host
SETTLE = 10  # seconds of traffic before, between and after the cuts
OUTAGE = 20  # seconds a link stays cut
RECOVERY_TIMEOUT = 90  # seconds after a heal for everything answered so far to be stored


class SiteTraffic(SteadyTraffic):
    """SteadyTraffic with the Host header the demo site allows (it is reached by address)."""

    def _session(self) -> requests.Session:
        session = super()._session()
        session.headers["Host"] = "localhost"
        return session


class Hosts:
    """The five hosts and the processes running on them."""

    def __init__(self, net: netns.Network, tmp: Path, demo_var_dir: Path) -> None:
        self.net = net
        self.addr = {name: net.add_host(name) for name in ("web", "broker", "enrich", "store", "mongo")}
        self.mongo_url = f"mongodb://{self.addr['mongo']}:27017"
        self.broker_url = f"redis://{self.addr['broker']}:6379/0"
        # The spool check is off: nothing may be lost that it would have to bring back.
        self.pipeline = Pipeline(tmp, self.broker_url, self.mongo_url, "logs", demo_var_dir, reconcile_after=0)
        self.pipeline.tmp.mkdir()

    def run(self, host: str, proc: Proc) -> Proc:
        proc.cmd = [*self.net.exec_prefix(host), *proc.cmd]
        self.pipeline.procs.append(proc.start())
        return proc

    def start(self) -> None:
        tmp, addr = self.pipeline.tmp, self.addr
        mongo = nx_proc(27017, tmp / "nx", tmp / "00-mongo.log")
        mongo.cmd[mongo.cmd.index("--host") + 1] = addr["mongo"]
        self.run("mongo", mongo)
        redis = redis_proc(6379, tmp / "redis", tmp / "00-redis.log")
        redis.cmd += ["--bind", addr["broker"], "--protected-mode", "no"]
        self.run("broker", redis)
        wait_for_port(addr["mongo"], 27017, 30, "nx-27017 on the MongoDB host")
        wait_for_port(addr["broker"], 6379, 30, "redis-server on the broker host")
        for host in ("enrich", "store"):
            log = tmp / f"01-{host}.log"
            self.run(host, worker_proc(host, f"eventlog.{host}", self.pipeline.env(), 2, log))
            wait_until(lambda log=log: log.exists() and "ready." in log.read_text(errors="replace"), 90,
                       f"{host} worker ready")
        web = web_proc(8000, self.pipeline.env(), 2, tmp / "02-web.log")
        web.cmd[web.cmd.index("-b") + 1] = f"{addr['web']}:8000"
        self.run("web", web)
        wait_for_port(addr["web"], 8000, 60, "gunicorn on the web host")

    def close(self) -> None:
        if sys.exc_info()[0] is not None:
            print(self.pipeline.logs())
        self.pipeline.close()


@pytest.fixture
def hosts(tmp_path: Path, demo_var_dir: Path) -> Iterator[Hosts]:
    netns.remove_leftovers()
    net = netns.Network()
    made = None
    try:
        made = Hosts(net, tmp_path / "hosts", demo_var_dir)
        made.start()
        yield made
    finally:
        if made is not None:
            made.close()
        net.close()


def test_stages_on_separate_hosts_survive_cut_links(hosts: Hosts) -> None:
    client = pymongo.MongoClient(hosts.mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True)
    logs = client.logs.website_logs
    tag = uuid.uuid4().hex[:12]
    traffic = SiteTraffic(f"http://{hosts.addr['web']}:8000", tag, RATE).start()
    figures: dict[str, dict[str, float]] = {}

    def stored_all_of(answered: list[str]) -> bool:
        return set(stored_counts(logs, tag)) >= set(answered)

    def outage(name: str, a: str, b: str) -> None:
        time.sleep(SETTLE)
        before = traffic.answered_count()
        hosts.net.cut(a, b)
        cut_at = time.monotonic()
        time.sleep(OUTAGE)
        hosts.net.heal(a, b)
        healed_at = time.monotonic()
        answered = list(traffic.answered)
        wait_until(lambda: stored_all_of(answered), RECOVERY_TIMEOUT, f"page views answered before the heal of {name}",
                   interval=0.25)
        figures[name] = {"outage_seconds": round(healed_at - cut_at, 1),
                         "answered_during_outage": len(answered) - before,
                         "recovery_seconds": round(time.monotonic() - healed_at, 1)}

    try:
        wait_until(lambda: traffic.answered_count() >= RATE, 30, "the first page views answered")
        outage("web <-> broker", "web", "broker")
        outage("store <-> mongo", "store", "mongo")
        time.sleep(SETTLE)
    finally:
        traffic.stop()
    answered = list(traffic.answered)
    wait_until(lambda: stored_all_of(answered), RECOVERY_TIMEOUT, "every answered page view stored", interval=0.5)
    time.sleep(3)  # a late redelivery would show up as a duplicate now
    counts = stored_counts(logs, tag)
    figures["all"] = {"sent": traffic._sent, "answered": len(answered), "not_answered": sum(traffic.failed.values()),
                      "stored": sum(1 for r in answered if counts[r]),
                      "duplicated": sum(n - 1 for n in counts.values() if n > 1)}
    print("multi-host figures:", json.dumps(figures))
    assert figures["all"]["stored"] == len(answered) and figures["all"]["duplicated"] == 0, figures
    # The request path never waits for the broker: the site answered throughout both cuts.
    assert figures["all"]["not_answered"] == 0, (figures, traffic.failed)
    for name in ("web <-> broker", "store <-> mongo"):
        assert figures[name]["answered_during_outage"] >= RATE * OUTAGE * 0.8, figures
