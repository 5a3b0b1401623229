"""Queue eventlog.enrich: validate + enrich a micro-batch, chain it to the store task."""

from __future__ import annotations

import logging
import time
from typing import Any

from kombu.exceptions import OperationalError

from celeryconfig import ENRICH_TASK
from pipeline.enrich import enrich_events
from pipeline.retention import expired_before
from tasks.app import app
from tasks.headers import EVENT_COUNT_HEADER, PUBLISHED_HEADER
from tasks.resources import geo_locator, settings
from tasks.store import store_events

log = logging.getLogger(__name__)


def _forward(docs: list[dict[str, Any]], dead: list[dict[str, Any]]) -> None:
    """Publish to the store queue, waiting out a broker outage.

    The incoming message stays unacknowledged until this returns, so a worker
    that dies here loses nothing: the batch is enriched again elsewhere.
    """
    delay = 0.5
    while True:
        try:
            store_events.apply_async(
                args=[docs, dead], retry=False,
                headers={EVENT_COUNT_HEADER: len(docs) + len(dead), PUBLISHED_HEADER: time.time()},
            )
            return
        except OperationalError as exc:
            log.warning("eventlog: store queue unreachable (%s); retry in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


@app.task(name=ENRICH_TASK, acks_late=True, ignore_result=True)
def enrich_batch(raw_events: list[Any]) -> int:
    """Enrich a micro-batch from the shipper; returns the number of events forwarded."""
    if not isinstance(raw_events, list):
        raw_events = [raw_events]
    s = settings()
    docs, dead = enrich_events(raw_events, geo_locator(), s.anonymize_ip, s.coordinate_precision,
                               expired_before(s.retention_days))
    _forward(docs, dead)
    return len(docs)
