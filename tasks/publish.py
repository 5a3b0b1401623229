"""The shipper's publish function: one Celery message per micro-batch."""

from __future__ import annotations

from typing import Any

from tasks.enrich import enrich_batch


def publish_batch(events: list[dict[str, Any]]) -> None:
    """Send a micro-batch to eventlog.enrich; raises if the broker did not take it."""
    enrich_batch.apply_async(args=[events], retry=False)
