"""EventBatches acknowledges a batch only when the task returned; otherwise it goes back."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.batching import EventBatches, events_in
from tasks.store import store_events


class Request:
    """What EventBatches.flush uses of a celery worker Request."""

    def __init__(self) -> None:
        self.acked = False
        self.requeued = False
        self.id, self.name, self.args, self.kwargs = "id", "eventlog.store_events", ([], []), {}
        self.delivery_info, self.hostname, self.reply_to, self.correlation_id = {}, "h", None, None
        self.request_dict: dict[str, Any] = {}
        self._payload = (self.args, self.kwargs, {})

    def acknowledge(self) -> None:
        self.acked = True

    def reject(self, requeue: bool = False) -> None:
        self.requeued = requeue


class Pool:
    """Records the callbacks flush() gives the pool; the test plays the pool's answer."""

    def apply_async(self, target: Any, args: Any, callback: Any, error_callback: Any, **_: Any) -> None:
        self.callback, self.error_callback = callback, error_callback


@pytest.fixture
def task() -> EventBatches:
    pool = Pool()
    store_events._pool = pool
    return store_events


def flush(task: EventBatches) -> list[Request]:
    requests = [Request(), Request()]
    task.flush(requests)
    return requests


def test_acknowledged_when_the_task_returned(task: EventBatches) -> None:
    requests = flush(task)
    task._pool.callback(0)  # zero events inserted (all duplicates) is a success
    assert all(r.acked and not r.requeued for r in requests)


def test_requeued_when_the_task_raised(task: EventBatches) -> None:
    requests = flush(task)
    task._pool.callback(None)  # celery-batches' apply_batches_task returns None when the task raised
    assert all(r.requeued and not r.acked for r in requests)


def test_requeued_when_the_pool_process_died(task: EventBatches) -> None:
    requests = flush(task)
    task._pool.error_callback(RuntimeError("WorkerLostError"))
    assert all(r.requeued and not r.acked for r in requests)


class Message:
    def __init__(self, headers: Any) -> None:
        self.headers = headers


@pytest.mark.parametrize(("headers", "count"), [({"eventlog_events": 37}, 37), ({}, 1), (None, 1),
                                                 ({"eventlog_events": "x"}, 1), ({"eventlog_events": 0}, 1)])
def test_event_count_from_the_header(headers: Any, count: int) -> None:
    assert events_in(Message(headers)) == count
