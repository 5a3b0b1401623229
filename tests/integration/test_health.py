"""health/ shows each stage's backlog and the age of its oldest event, and degrades
when a stage stops moving (a store worker that is not running, here)."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.helpers.pipeline import wait_until

pytestmark = pytest.mark.integration

MAX_AGE = 3  # seconds: EVENTLOG_HEALTH_MAX_AGE for the test


def health(pipeline) -> tuple[int, dict]:  # noqa: ANN001
    answer = requests.get(pipeline.url("/eventlog/health/"), timeout=10)
    return answer.status_code, answer.json()


def wait_health(pipeline, status: int, what: str) -> dict:  # noqa: ANN001
    def answered() -> dict | None:
        code, body = health(pipeline)
        return body if code == status else None

    return wait_until(answered, 30, what)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_stalled_stage_degrades_health_until_it_moves_again(make_pipeline, mongo, broker, rabbit_url) -> None:  # noqa: ANN001
    pipeline = make_pipeline(broker_url=rabbit_url if broker == "rabbitmq" else None, health_max_age=MAX_AGE)
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
