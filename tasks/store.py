"""Queue eventlog.store: buffer per worker, flush with one bulk write, ack after.

The buffering (counted in events, with a prefetch window sized in events, safe
across broker reconnects, acknowledging only what returned) is tasks.batching's
EventBatches; this module is the flush itself.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.store import with_retry
from tasks.app import app
from tasks.batching import EventBatches
from tasks.resources import event_store, settings

log = logging.getLogger(__name__)


def _unpack(requests: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    docs: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    for request in requests:
        batch_docs, batch_dead = request.args
        docs.extend(batch_docs)
        dead.extend(batch_dead)
    return docs, dead


@app.task(
    base=EventBatches,
    name="eventlog.store_events",
    acks_late=True,
    ignore_result=True,
    batch_size=settings().batch_size,
    flush_interval=settings().flush_interval,
)
def store_events(requests: list[Any]) -> int:
    """Write every buffered event with one bulk write per collection.

    MongoDB unreachable: retry with backoff for as long as it takes; nothing is
    acknowledged meanwhile (a worker killed while waiting loses nothing). A write
    the store refuses is dead-lettered (EventStore.store_or_dead_letter); the batch
    is acknowledged only after every write is stored or dead-lettered.
    """
    docs, dead = _unpack(requests)
    store = event_store()
    if dead:
        # Dead letters are JSON text under a hash id: nothing in them a store can refuse.
        with_retry(lambda: store.store_dead_letters(dead), "dead-letter write")
    result = store.store_or_dead_letter(docs)
    log.info(
        "eventlog: stored %d events (%d already stored, %d merged, %d refused, %d dead letters) "
        "from %d messages",
        result.inserted, result.duplicates, result.merged, result.dead_lettered, len(dead), len(requests),
    )
    return result.inserted
