"""Send dead letters back through the normal pipeline (`eventlog dead-letters replay`).

What to send and when a letter is settled is pipeline.deadletters; this module only
publishes: enrich-stage letters as the shipper publishes (tasks.publish), store-stage
letters as the enrich task forwards (to eventlog.store, with the same headers).
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.deadletters import Letter
from tasks.app import app
from tasks.headers import EVENT_COUNT_HEADER, PUBLISHED_HEADER
from tasks.publish import publish_batch

STORE_TASK = "eventlog.store_events"  # tasks.store, by name: the CLI does not load the worker stack
PER_MESSAGE = 100  # letters per message (a replay is a backlog, not live traffic)


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i:i + PER_MESSAGE] for i in range(0, len(items), PER_MESSAGE)]


def publish_letters(letters: list[Letter]) -> int:
    """Publish the payloads of replayable letters; returns how many were sent. Raises if the broker
    does not take them (nothing is marked replayed then)."""
    enrich = [letter.payload for letter in letters if letter.stage == "enrich" and letter.payload is not None]
    store = [letter.payload for letter in letters if letter.stage == "store" and letter.payload is not None]
    for chunk in _chunks(enrich):
        publish_batch(chunk)
    for chunk in _chunks(store):
        app.send_task(STORE_TASK, args=[chunk, []], retry=False,  # celeryconfig.task_routes: eventlog.store
                      argsrepr=f"[{len(chunk)} replayed writes]", kwargsrepr="{}",
                      headers={EVENT_COUNT_HEADER: len(chunk), PUBLISHED_HEADER: time.time()})
    return len(enrich) + len(store)
