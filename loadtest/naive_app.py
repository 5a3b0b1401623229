"""Baseline (b): the naive Celery design, one task per event doing insert_one.

A separate Celery app so it shares nothing with eventlog's (``tasks``):

    NAIVE_BROKER_URL=... NAIVE_MONGO_URL=... celery -A loadtest.naive_app worker -Q loadtest.naive -c 2

Celery defaults throughout (early acknowledgement, prefetch multiplier 4, no
publisher confirms), as a first attempt at "log events with Celery" would have.
The event id is kept as a field, not as _id, so duplicates would show.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pymongo
from celery import Celery
from celery.signals import worker_ready

QUEUE = "loadtest.naive"
COLLECTION = "website_logs"

app = Celery("naive_baseline", broker=os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/11"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)

_client: dict[str, Any] = {"pid": None, "collection": None}


def _collection() -> Any:
    if _client["pid"] != os.getpid():  # one client per pool process, opened after fork
        client = pymongo.MongoClient(os.environ.get("NAIVE_MONGO_URL", "mongodb://127.0.0.1:27017"))
        _client.update(pid=os.getpid(), collection=client[os.environ.get("NAIVE_MONGO_DB", "naive")][COLLECTION])
    return _client["collection"]


@app.task(name="naive.store_event", ignore_result=True)
def store_event(event: dict[str, Any]) -> None:
    event["stored_at"] = time.time()
    _collection().insert_one(event)


@worker_ready.connect
def _announce(**_: Any) -> None:
    # The worker runs at log level WARNING (per-task INFO lines would slow it down);
    # the benchmark waits for this line instead of Celery's "ready." message.
    print("naive worker ready", flush=True)
