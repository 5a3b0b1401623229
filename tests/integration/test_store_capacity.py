"""The store stage's capacity is counted in events: small messages from many web
processes still fill its batches (behaviour, not timing)."""

from __future__ import annotations

import re

import pytest

from tests.helpers.traffic import answered_then_stored

pytestmark = pytest.mark.integration

FLUSH = re.compile(r"stored (\d+) events \((\d+) already stored, (\d+) merged, \d+ refused, \d+ dead letters\) "
                   r"from (\d+) messages")
# celeryconfig's worker_prefetch_multiplier (4 at the test's settings) x 2 pool processes:
# the most messages a window counted in messages would let the store worker hold.
MESSAGE_WINDOW = 8


def test_flushes_gather_more_messages_than_a_message_window_holds(make_pipeline, mongo) -> None:  # noqa: ANN001
    # Four web processes shipping every 100 ms at 60 page views/s in all: each message
    # carries one or two events, the traffic finding 1 of issue 9 saw collapse.
    pipeline = make_pipeline(batch_size=200, flush_interval=1.0)
    pipeline.worker(queues="eventlog.enrich")
    store = pipeline.worker(queues="eventlog.store")
    pipeline.web(workers=4)
    answered, counts = answered_then_stored(pipeline.url(""), mongo.database.website_logs)
    assert all(counts[r] == 1 for r in answered)
    flushes = [(int(m[1]) + int(m[2]), int(m[4])) for m in FLUSH.finditer(store.log.read_text())]
    events, messages = max(flushes, key=lambda f: f[1])
    # A message window would flush at most MESSAGE_WINDOW messages per flush interval.
    assert messages > MESSAGE_WINDOW, flushes
    assert events > MESSAGE_WINDOW * 2, flushes
