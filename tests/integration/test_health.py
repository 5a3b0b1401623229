"""health/ shows each stage's backlog and the age of its oldest event (to the monitor's
token), and degrades when a stage stops moving (a store worker that is not running, here);
during a broker outage a burst of anonymous probes costs one check, not one each."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers.pipeline import wait_until
from tests.helpers.tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

MAX_AGE = 3  # seconds: EVENTLOG_HEALTH_MAX_AGE for the test
TOKEN = uuid.uuid4().hex  # EVENTLOG_HEALTH_TOKEN: the figures are for the monitor holding it


def health(pipeline, token: str | None = TOKEN) -> tuple[int, dict]:  # noqa: ANN001
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.get(pipeline.url("/eventlog/health/"), headers=headers, timeout=10)
    return answer.status_code, answer.json()


def wait_health(pipeline, status: int, what: str) -> dict:  # noqa: ANN001
    def answered() -> dict | None:
        code, body = health(pipeline)
        return body if code == status else None

    return wait_until(answered, 30, what)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_stalled_stage_degrades_health_until_it_moves_again(make_pipeline, mongo, broker, rabbit_url) -> None:  # noqa: ANN001
    pipeline = make_pipeline(broker_url=rabbit_url if broker == "rabbitmq" else None, health_max_age=MAX_AGE,
                             health_token=TOKEN, health_cache=0.5)
    pipeline.worker(queues="eventlog.enrich")
    pipeline.web(workers=1)
    status, body = health(pipeline)
    assert (status, body["status"]) == (200, "ok"), body
    assert body["stages"]["eventlog.store"]["messages"] == 0
    assert body["max_age_seconds"] == MAX_AGE

    tag = uuid.uuid4().hex[:12]
    for i in range(5):
        assert pipeline.get(f"/cdcontent/?i={i}", headers={"Referer": tag}).status_code == 200
    # Enriched and forwarded, but no store worker takes them: the store stage ages.
    body = wait_health(pipeline, 503, "health to degrade")
    assert body["status"] == "lagging", body
    store_stage = body["stages"]["eventlog.store"]
    assert store_stage["messages"] >= 1, body
    assert store_stage["oldest_age_seconds"] > MAX_AGE, body
    assert body["oldest_waiting_seconds"] >= store_stage["oldest_age_seconds"]
    assert body["stages"]["eventlog.enrich"]["messages"] == 0, body

    pipeline.worker(queues="eventlog.store")
    wait_until(lambda: mongo.database.website_logs.count_documents({"referrer": tag}) == 5, 60, "the 5 stored")
    body = wait_health(pipeline, 200, "health to recover")
    assert body["status"] == "ok" and body["stages"]["eventlog.store"]["messages"] == 0, body


def test_during_a_broker_outage_a_burst_of_anonymous_probes_costs_one_check(make_pipeline, private_redis) -> None:  # noqa: ANN001
    relay = TcpProxy("127.0.0.1", private_redis.port)  # counts the site's connections to the broker
    pipeline = make_pipeline(broker_url=relay.url("redis", "/0"), health_token=TOKEN, health_cache=600)
    pipeline.web(workers=1)
    private_redis.kill()
    before = relay.accepted
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: requests.get(pipeline.url("/eventlog/health/"), timeout=30), range(20)))
    assert [(a.status_code, a.json()) for a in answers] == [(503, {"status": "broker unreachable"})] * 20
    # One check answered all 20 (the others came from the cache). Before, each request opened
    # connections of its own and waited 2 s between two attempts: 40 connections and 40 s here.
    attempts = relay.accepted - before
    print(f"broker connections for 20 probes: {attempts}; slowest answer "
          f"{max(a.elapsed.total_seconds() for a in answers):.2f} s")
    assert attempts <= 4, attempts
    assert health(pipeline)[1]["broker"] is False  # the token's figures say why, from the same check
