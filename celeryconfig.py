"""Celery configuration: broker, queues, routing, acknowledgements, prefetch.

Every value derives from the EVENTLOG_* settings (pipeline/config.py), so the web
processes, the workers and beat agree without a second configuration file.
"""

from math import ceil

from kombu import Exchange, Queue

from beat_schedule import BEAT_SCHEDULE
from pipeline.config import load_settings

_settings = load_settings()

ENRICH_QUEUE = "eventlog.enrich"
STORE_QUEUE = "eventlog.store"
ROLLUP_QUEUE = "eventlog.rollup"
# Named here, not imported from tasks.enrich: the web process publishes it without the worker stack.
ENRICH_TASK = "eventlog.enrich_batch"

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
# A publish (the shipper, the enrich task) must fail fast instead of hanging a
# thread while the broker is away: both retry on their own.
broker_connection_timeout = 4
# Workers and beat reconnect for as long as the broker is away (this setting is
# read by the consumer and beat only, not by publishers): with a limit, a broker
# down for more than a few seconds would make every worker exit.
broker_connection_max_retries = None

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None

# RabbitMQ queue type (EVENTLOG_QUEUE_TYPE; ignored by Redis, which has none).
# quorum: replicated, each message fsynced by a majority before the publisher confirm,
# and a delivery limit: a message returned EVENTLOG_DELIVERY_LIMIT times (a poison
# message that kills its worker, a batch the store keeps refusing) goes to DEAD_QUEUE
# instead of looping forever. A queue's type is fixed when it is declared: switching an
# existing vhost needs its eventlog queues deleted first (deploy/README.md).
QUEUE_TYPE = _settings.queue_type.strip().lower()
if QUEUE_TYPE not in ("classic", "quorum"):
    raise ValueError(f"EVENTLOG_QUEUE_TYPE={_settings.queue_type!r}: expected 'classic' or 'quorum'")
DEAD_QUEUE = "eventlog.dead"
STAGE_QUEUE_ARGUMENTS: dict | None = None
if QUEUE_TYPE == "quorum":
    STAGE_QUEUE_ARGUMENTS = {
        "x-queue-type": "quorum",
        "x-delivery-limit": _settings.delivery_limit,
        "x-dead-letter-exchange": DEAD_QUEUE,
        "x-dead-letter-routing-key": DEAD_QUEUE,
        # Dead-lettering confirmed by the dead-letter queue before the message leaves
        # (the default, at-most-once, may drop it if the dead-letter queue is away).
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
# Declared by the workers (tasks/quorum.py), never consumed: what lands here waits for an
# operator (a worker consuming it would run the poison message again).
DEAD_LETTER_QUEUE = Queue(DEAD_QUEUE, Exchange(DEAD_QUEUE, type="direct"), routing_key=DEAD_QUEUE,
                          queue_arguments={"x-queue-type": "quorum"} if QUEUE_TYPE == "quorum" else None)

# One direct exchange per stage: without explicit exchanges Celery binds every
# queue to the default queue's exchange and key, and a message would reach both.
task_queues = tuple(
    Queue(q, Exchange(q, type="direct"), routing_key=q, queue_arguments=STAGE_QUEUE_ARGUMENTS)
    for q in (ENRICH_QUEUE, STORE_QUEUE, ROLLUP_QUEUE)
)
# Quorum queues refuse a global (per-channel) prefetch; Celery then sets it per
# consumer (5.5+). RabbitMQ applies a per-consumer limit only to consumers started
# after it, so the store's event-sized window re-registers its consumer to widen
# (tasks/batching.py).
worker_detect_quorum_queues = True
task_default_queue = ENRICH_QUEUE
task_default_exchange = ENRICH_QUEUE
task_default_routing_key = ENRICH_QUEUE
task_routes = {
    ENRICH_TASK: {"queue": ENRICH_QUEUE},
    "eventlog.store_events": {"queue": STORE_QUEUE},
    "eventlog.rollup.*": {"queue": ROLLUP_QUEUE},
}

# A message is acknowledged only after its work is done; a worker killed mid-task
# leaves it unacknowledged and the broker delivers it again.
task_acks_late = True
task_reject_on_worker_lost = True

# Messages a worker may hold unacknowledged per pool process. This is the base
# window; the store stage widens its own at run time to about
# EVENTLOG_BATCH_SIZE x (processes + 1) *events*, whatever the events per message
# (tasks/batching.py, pipeline/prefetch.py), so small messages still fill a batch.
MESSAGES_PER_BATCH = max(1, ceil(_settings.batch_size / max(1, _settings.ship_batch)))
worker_prefetch_multiplier = max(4, 2 * MESSAGES_PER_BATCH)

broker_transport_options: dict = {
    # Redis transport: an unacknowledged message returns to its queue after this
    # many seconds (the time a killed worker's messages take to come back).
    # It must exceed the longest time a batch may legitimately stay unacknowledged.
    "visibility_timeout": _settings.visibility_timeout,
    # How often a worker looks for messages whose holder died (kombu's default
    # looks every 10 s but scans only every 10th look: 100 s on top of the timeout).
    "unacked_restore_interval": max(1, min(10, _settings.visibility_timeout // 5)),
    "unacked_restore_throttle": 1,
    # A connection cut silently (a firewall or NAT dropping it, a partition) fails a read or a
    # publish after this many seconds instead of waiting for TCP's retransmissions (26.8 s were
    # measured across a 20 s cut, up to about 15 minutes with Linux's defaults); the shipper's
    # backoff then reconnects. Longer than a worker's BRPOP (1 s) so an idle queue never trips it.
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
}
if broker_url.startswith(("amqp", "pyamqp")):
    # RabbitMQ: publish returns only once the broker has the message, so the
    # shipper never trims the spool for a message the broker did not take.
    broker_transport_options = {"confirm_publish": True}

worker_send_task_events = True
task_send_sent_event = False

beat_schedule = BEAT_SCHEDULE
