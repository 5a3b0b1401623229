"""Workers declare eventlog.dead, where quorum queues put what exceeded the delivery limit.

A quorum queue dead-letters a message returned EVENTLOG_DELIVERY_LIMIT times to the
exchange named in its ``x-dead-letter-exchange``; if nothing is bound there, RabbitMQ
drops the message. So every worker (re)declares the dead-letter exchange and queue
each time its consumer (re)connects, before it consumes anything. Nobody consumes
eventlog.dead: what lands there waits for an operator (deploy/README.md).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from celeryconfig import DEAD_LETTER_QUEUE, QUEUE_TYPE

log = logging.getLogger(__name__)


def uses_dead_letter_queue(driver_type: str) -> bool:
    """Only quorum queues on RabbitMQ dead-letter (Redis has neither queue types nor limits)."""
    return QUEUE_TYPE == "quorum" and driver_type == "amqp"


class DeclareDeadLetterQueue(bootsteps.StartStopStep):
    """Consumer bootstep: declare eventlog.dead before the task consumer starts."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, c: Any) -> None:  # noqa: D102 - celery's bootstep API
        if not uses_dead_letter_queue(c.connection.transport.driver_type):
            return
        DEAD_LETTER_QUEUE(c.connection.default_channel).declare()
        log.info("eventlog: dead-letter queue %s declared", DEAD_LETTER_QUEUE.name)


def install(app: Any) -> None:
    """Add the bootstep to a Celery app (tasks.app does it for eventlog's app)."""
    app.steps["consumer"].add(DeclareDeadLetterQueue)
