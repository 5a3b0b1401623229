"""Queue eventlog.store: buffer per worker, flush with one bulk write, ack after.

Built on celery-batches: the worker's consumer keeps messages unacknowledged in a
buffer and hands them to a pool process as one call; with acks_late they are
acknowledged only when that call returns. celery-batches counts *messages*; our
messages carry micro-batches of events, so EventBatches counts the events each
message announces in a header and flushes at EVENTLOG_BATCH_SIZE events (or every
EVENTLOG_FLUSH_INTERVAL seconds, celery-batches' own timer).
"""

from __future__ import annotations

import logging
from typing import Any

from celery_batches import Batches

from pipeline.store import with_retry
from tasks.app import app
from tasks.resources import event_store, settings

log = logging.getLogger(__name__)

EVENT_COUNT_HEADER = "eventlog_events"


class EventBatches(Batches):
    flush_every = 10**9  # celery-batches' message count: unused, see module doc

    def __init__(self) -> None:
        super().__init__()
        self._events_buffered = 0

    def Strategy(self, task, app, consumer):  # noqa: ANN001, ANN201, N802 - celery's API
        handle = super().Strategy(task, app, consumer)
        batch_size = settings().batch_size

        def count_events(message, body, ack, reject, callbacks, **kw):  # noqa: ANN001, ANN202
            handle(message, body, ack, reject, callbacks, **kw)
            self._events_buffered += int((message.headers or {}).get(EVENT_COUNT_HEADER, 1))
            if self._events_buffered >= batch_size:
                self._do_flush()

        return count_events

    def _do_flush(self) -> None:
        self._events_buffered = 0
        super()._do_flush()


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
    flush_interval=settings().flush_interval,
)
def store_events(requests: list[Any]) -> int:
    """Write every buffered event with one unordered bulk insert.

    MongoDB unreachable: retry with backoff for as long as it takes; nothing is
    acknowledged meanwhile (a worker killed while waiting loses nothing).
    """
    docs, dead = _unpack(requests)
    store = event_store()
    if dead:
        with_retry(lambda: store.store_dead_letters(dead), "dead-letter write")
    result = with_retry(lambda: store.store_writes(docs), "bulk write")
    log.info(
        "eventlog: stored %d events (%d already stored, %d merged, %d dead letters) from %d messages",
        result.inserted, result.duplicates, result.merged, len(dead), len(requests),
    )
    return result.inserted
