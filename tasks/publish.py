"""The shipper's publish function: one Celery message per micro-batch.

Publishes by task name, so the web process never imports the worker's modules.
"""

from __future__ import annotations

import time
from typing import Any

from celeryconfig import ENRICH_TASK
from tasks.app import app
from tasks.headers import EVENT_COUNT_HEADER, PUBLISHED_HEADER


def publish_batch(events: list[Any]) -> None:
    """Send a micro-batch (raw spool lines or event dicts) to eventlog.enrich;
    raises if the broker did not take it."""
    app.send_task(
        ENRICH_TASK, args=[events], retry=False,  # celeryconfig.task_routes sends it to eventlog.enrich
        # Celery would otherwise build a repr of the whole batch for the headers.
        argsrepr=f"[{len(events)} events]", kwargsrepr="{}",
        headers={EVENT_COUNT_HEADER: len(events), PUBLISHED_HEADER: time.time()},
    )
