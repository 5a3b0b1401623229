"""A message the broker lost in transit is found missing by the web process's check and
shipped again: the spool is the end-to-end guarantee, not the broker's acknowledgements."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection

from celeryconfig import ENRICH_QUEUE
from tests.helpers.pipeline import wait_until

pytestmark = pytest.mark.integration


def queued(broker_url: str, queue: str) -> int:
    with Connection(broker_url) as conn:
        return conn.default_channel.client.llen(queue)


def lose_queue(broker_url: str, queue: str) -> None:
    """What a consumer SIGKILLed between BRPOP and recording the delivery leaves: nothing."""
    with Connection(broker_url) as conn:
        conn.default_channel.client.delete(queue)


def test_a_message_lost_in_transit_is_shipped_again(make_pipeline, mongo) -> None:  # noqa: ANN001
    pipeline = make_pipeline(reconcile_after=2)
    pipeline.web(workers=1)
    tag = uuid.uuid4().hex[:12]
    lost_referrer = f"https://lost.example/{tag}"
    assert pipeline.get("/cdcontent/", headers={"Referer": lost_referrer}).status_code == 200
    wait_until(lambda: queued(pipeline.broker_url, ENRICH_QUEUE) >= 1, 20, "the page view published")
    lose_queue(pipeline.broker_url, ENRICH_QUEUE)

    pipeline.worker()

    def lost_one_stored() -> bool:
        # Traffic goes on: page views made after the loss get stored, so the pipeline has
        # visibly moved past the lost one and the check can call it lost, not late.
        assert pipeline.get("/", headers={"Referer": f"https://later.example/{tag}"}).status_code == 200
        return mongo.database.website_logs.count_documents({"referrer": lost_referrer}) == 1

    wait_until(lost_one_stored, 90, "the lost page view stored after all", interval=1.0)
    assert "never reached the store" in pipeline.logs()
    assert mongo.database.website_logs.count_documents({"referrer": lost_referrer}) == 1
