"""EventBatches: celery-batches counted in events, safe across reconnects, acking only what was stored.

celery-batches (the ``Batches`` base task) keeps messages unacknowledged in a buffer
on the worker's consumer and hands them to a pool process as one call. Three things
it does are wrong for eventlog, and this subclass changes exactly those:

1. It counts *messages*; our messages carry micro-batches of 1..500 events. The
   buffer flushes at EVENTLOG_BATCH_SIZE *events* (each message announces its count
   in a header), and the prefetch window is resized in events
   (pipeline.prefetch.PrefetchWindow), so small messages from many web processes
   still fill a batch instead of stalling the store at a few messages per flush.
2. Its flush timer is kept on the task instance but lives on the consumer's event
   loop; after a broker reconnect Celery builds a new loop and calls Strategy()
   again, and the old timer never fires (clokep/celery-batches#107, fixed upstream
   by #108, not in a release yet). Strategy() here drops the dead timer and arms a
   new one; a message handler that finds the timer silent re-arms it too.
3. It acknowledges a batch even when the task raised. Here the batch is
   acknowledged only when the task returned a result; a task that raised (or a pool
   process that died) sends its messages back to the queue.

On RabbitMQ quorum queues the prefetch is per consumer and RabbitMQ applies a new one
only to consumers registered after it, so there a resized window also re-registers the
store queue's consumer (``_consume_again``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from time import monotonic
from typing import Any

from celery.utils.quorum_queues import detect_quorum_queues
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from celeryconfig import STORE_QUEUE
from pipeline.prefetch import PrefetchWindow
from tasks.headers import EVENT_COUNT_HEADER

log = logging.getLogger(__name__)

# A flush timer that has not fired for this many intervals is taken as dead.
SILENT_TIMER_INTERVALS = 3


def per_consumer_qos(consumer: Any) -> bool:
    """True where Celery sets the prefetch per consumer (quorum queues on RabbitMQ refuse a
    per-channel one). RabbitMQ applies such a limit only to consumers started after it."""
    app = consumer.app
    return bool(app.conf.worker_detect_quorum_queues) and detect_quorum_queues(
        app, consumer.connection.transport.driver_type)[0]


def events_in(message: Any) -> int:
    try:
        return max(1, int((message.headers or {}).get(EVENT_COUNT_HEADER, 1)))
    except (TypeError, ValueError):
        return 1


class EventBatches(Batches):
    """Base task of the store stage; subclasses set ``batch_size`` and ``flush_interval``."""

    abstract = True
    flush_every = 10**9  # celery-batches' message count: unused, we count events
    batch_size = 1000

    def __init__(self) -> None:
        super().__init__()
        self._events_buffered = 0
        self._last_flush = monotonic()
        self._window: PrefetchWindow | None = None
        self._reconsume = False  # per-consumer QoS: a new limit needs a new consumer
        self._reconsume_due = False

    # ------------------------------------------------------------ consumer side

    def Strategy(self, task, app, consumer):  # noqa: ANN001, ANN201, N802 - celery's API
        # Called at every consumer (re)start: a timer armed on the previous event
        # loop is dead; forget it so the next message arms one on this loop.
        if self._tref is not None:
            log.info("eventlog: consumer restarted; re-arming the store's flush timer")
            self._tref.cancel()
            self._tref = None
        handle = super().Strategy(task, app, consumer)
        self._last_flush = monotonic()  # the outage is not the timer's silence
        if not self._buffer.empty():
            # Requests buffered before the connection dropped: write them (their acks
            # may fail on the dead channel; the broker then redelivers, a harmless duplicate).
            self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)
        concurrency = max(1, getattr(consumer.pool, "num_processes", None) or 1)
        # Room for a batch being written by every pool process and one more filling.
        self._window = PrefetchWindow(self.batch_size * (concurrency + 1), consumer.initial_prefetch_count)
        self._reconsume = per_consumer_qos(consumer)
        self._reconsume_due = False

        def on_message(message, body, ack, reject, callbacks, **kw):  # noqa: ANN001, ANN202
            events = events_in(message)
            if self._tref is None:  # handle() arms the timer now: the silence starts here
                self._last_flush = monotonic()
            handle(message, body, ack, reject, callbacks, **kw)
            self._events_buffered += events
            self._resize_window(consumer, events)
            if self._events_buffered >= self.batch_size:
                self._do_flush()
            elif monotonic() - self._last_flush > SILENT_TIMER_INTERVALS * self.flush_interval:
                self._rearm_silent_timer(consumer)

        return on_message

    def _resize_window(self, consumer: Any, events: int) -> None:
        window = self._window
        qos = getattr(consumer, "qos", None)
        if window is None or qos is None:
            return
        window.observe(events)
        if window.worth_updating(qos.value):
            # Through increment/decrement: the consumer loop re-applies qos.value
            # whenever it differs from what was sent (QoS.set alone would be undone).
            change = window.limit() - qos.value
            if change > 0:
                qos.increment_eventually(change)
            else:
                qos.decrement_eventually(-change)
            qos.update()
            if self._reconsume and not self._reconsume_due:
                # Not from inside this message's handler: cancelling waits for the broker,
                # and deliveries arriving meanwhile run handlers of their own.
                self._reconsume_due = True
                consumer.timer.call_after(0, self._consume_again, (consumer,))

    def _consume_again(self, consumer: Any) -> None:
        """Register the store queue's consumer again so the broker applies the new prefetch.

        Messages the old consumer holds stay unacknowledged on the channel and are
        acknowledged as usual; while the window shrinks the two consumers' windows add up
        for a moment (at most one old window on top).
        """
        self._reconsume_due = False
        task_consumer = getattr(consumer, "task_consumer", None)
        queue = next((q for q in getattr(task_consumer, "queues", ()) if q.name == STORE_QUEUE), None)
        if queue is None:
            return
        task_consumer.cancel_by_queue(STORE_QUEUE)
        task_consumer.add_queue(queue)
        task_consumer.consume()
        log.info("eventlog: store consumer registered again with a prefetch of %d messages", consumer.qos.value)

    def _rearm_silent_timer(self, consumer: Any) -> None:
        log.warning("eventlog: the store's flush timer has not fired for %.0f s with %d events buffered; "
                    "flushing and re-arming it", monotonic() - self._last_flush, self._events_buffered)
        if self._tref is not None:
            self._tref.cancel()
        self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)
        self._do_flush()

    def _do_flush(self) -> None:
        self._events_buffered = 0
        self._last_flush = monotonic()
        super()._do_flush()

    # ------------------------------------------------------------ pool side

    def flush(self, requests: Collection[Any]) -> Any:
        """Run the task on a pool process; acknowledge only if it returned a result."""
        requests = list(requests)
        serializable = ([SimpleRequest.from_request(r) for r in requests],)

        def on_return(result: Any) -> None:
            # apply_batches_task returns None when the task raised.
            if result is None:
                log.error("eventlog: store task failed; %d messages go back to the queue", len(requests))
                for request in requests:
                    request.reject(requeue=True)
                return
            for request in requests:
                request.acknowledge()

        def on_error(exc: Any) -> None:
            # The pool process died mid-write (SIGKILL, OOM): nothing is known to be stored.
            log.error("eventlog: store pool process lost (%r); %d messages go back to the queue",
                      exc, len(requests))
            for request in requests:
                request.reject(requeue=True)

        return self._pool.apply_async(
            apply_batches_task, (self, serializable, 0, None), callback=on_return, error_callback=on_error,
        )
