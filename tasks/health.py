"""Health figures of the pipeline, for the health endpoint, the dashboard and `make demo`.

Per stage: how many messages wait and how long the oldest has waited, so an
operator sees a stage falling behind before users do. Ages come from the
``eventlog_published`` header every eventlog message carries (tasks.headers).

- Redis: the oldest waiting message is the tail of the queue's list (LINDEX, no
  consumption); messages a worker holds unacknowledged are in kombu's ``unacked``
  hash, indexed by delivery time, so a store worker sitting on a batch shows too.
- RabbitMQ: the oldest ready message is fetched and requeued at once (basic.get +
  basic.reject; the broker puts it back in place). Messages a worker holds are not
  visible over AMQP; their age shows in the store's own lag instead. Not on quorum
  queues: there every return counts toward the delivery limit, so a monitor polling
  health would push a waiting message into eventlog.dead; the age is then unknown.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pymongo
from amqp.exceptions import ChannelError
from pymongo.errors import PyMongoError

from celeryconfig import ENRICH_QUEUE, QUEUE_TYPE, STORE_QUEUE
from pipeline.config import Settings
from pipeline.rollups import rollup_state
from pipeline.spool import spool_size
from pipeline.store import DEAD_LETTERS, WEBSITE_LOGS, process_client
from tasks.broker_probe import PROBE_TIMEOUT, probe
from tasks.headers import PUBLISHED_HEADER
from tasks.resources import settings

STAGES = (ENRICH_QUEUE, STORE_QUEUE)
UNACKED_SCAN = 50  # oldest unacknowledged Redis deliveries looked at per check
# Seconds for the store's three reads together: an unreachable store answers within this, and
# counting a large collection on a slow server still fits.
STORE_TIMEOUT = 2 * PROBE_TIMEOUT


def _age(published: Any, now: float) -> float | None:
    try:
        return round(max(0.0, now - float(published)), 3)
    except (TypeError, ValueError):
        return None  # a message from an older version, without the header


def _published(payload: Any) -> Any:
    if isinstance(payload, (bytes, str)):
        payload = json.loads(payload)
    return (payload.get("headers") or {}).get(PUBLISHED_HEADER)


def _oldest(*ages: float | None) -> float | None:
    known = [a for a in ages if a is not None]
    return max(known) if known else None


def _redis_stages(channel: Any, now: float) -> dict[str, dict[str, Any]]:
    client = channel.client
    held: dict[str, list[float]] = {q: [] for q in STAGES}
    for tag in client.zrange(channel.unacked_index_key, 0, UNACKED_SCAN - 1):
        entry = client.hget(channel.unacked_key, tag)
        if entry is None:
            continue
        message, _exchange, routing_key = json.loads(entry)
        age = _age(_published(message), now)
        if routing_key in held and age is not None:
            held[routing_key].append(age)
    stages = {}
    for queue in STAGES:
        tail = client.lindex(queue, -1)
        waiting = _age(_published(tail), now) if tail is not None else None
        stages[queue] = {"messages": client.llen(queue), "held_by_workers": len(held[queue]),
                         "oldest_age_seconds": _oldest(waiting, *held[queue])}
    return stages


def _amqp_stage(conn: Any, queue: str, now: float) -> dict[str, Any]:
    channel = conn.channel()
    try:
        depth = channel.queue_declare(queue, passive=True).message_count
        age = None
        if depth and QUEUE_TYPE != "quorum":
            message = channel.basic_get(queue, no_ack=False)
            if message is not None:
                age = _age((message.headers or {}).get(PUBLISHED_HEADER), now)
                channel.basic_reject(message.delivery_tag, requeue=True)
        return {"messages": depth, "held_by_workers": None, "oldest_age_seconds": age}
    except ChannelError:  # not declared yet: nothing waits
        return {"messages": 0, "held_by_workers": None, "oldest_age_seconds": None}
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001 - a failed passive declare closed it already
            pass


def _read_stages(conn: Any) -> dict[str, dict[str, Any]]:
    now = time.time()
    if conn.transport.driver_type == "redis":
        return _redis_stages(conn.default_channel, now)
    return {queue: _amqp_stage(conn, queue, now) for queue in STAGES}


def stage_figures(s: Settings | None = None) -> dict[str, dict[str, Any]] | None:
    """Per queue: messages waiting, messages held unacknowledged by workers (Redis: of the
    oldest UNACKED_SCAN deliveries), age of the oldest of either; None if no broker.

    Read through this process's shared broker connection (tasks.broker_probe), short timeouts.
    """
    try:
        return probe.run((s or settings()).broker_url, _read_stages)
    except Exception:  # noqa: BLE001 - any broker failure means "not healthy"
        return None


def store_figures(s: Settings) -> dict[str, Any] | None:
    """Stored and dead-lettered counts and the lag of the newest stored event.

    Through the process's MongoDB client, all of it within STORE_TIMEOUT (pymongo.timeout
    bounds server selection too), so an unreachable store answers fast."""
    try:
        with pymongo.timeout(STORE_TIMEOUT):
            return _store_counts(process_client(s.mongo_url)[s.mongo_db])
    except PyMongoError:
        return None


def _store_counts(db: Any) -> dict[str, Any]:
    newest = db[WEBSITE_LOGS].find_one({}, {"datetime": 1, "stored_at": 1}, sort=[("stored_at", -1)])
    lag = (newest["stored_at"] - newest["datetime"]).total_seconds() if newest else None
    return {
        "events": db[WEBSITE_LOGS].estimated_document_count(),
        "dead_letters": db[DEAD_LETTERS].count_documents({}),
        "last_lag_seconds": lag,
        **rollup_state(db),
    }


def health(s: Settings | None = None) -> tuple[bool, dict[str, Any]]:
    """(healthy, details): healthy when broker and store answer and no event has
    waited longer than EVENTLOG_HEALTH_MAX_AGE in any stage.

    ``s``: the settings of the caller (a web process passes its Django-side ones,
    which may differ from the environment's); default: the environment's.
    """
    s = s or settings()
    stages = stage_figures(s)
    store = store_figures(s)
    # dropped: events the spool refused when full (EVENTLOG_SPOOL_MAX_BYTES) or its disk was.
    spool = {**spool_size(s.spool_dir), "max_bytes": s.spool_max_bytes}
    ages = [spool["oldest_age_seconds"], *((st["oldest_age_seconds"] for st in stages.values()) if stages else ())]
    oldest = _oldest(*ages)
    if stages is None:
        status = "broker unreachable"
    elif store is None:
        status = "store unreachable"
    elif oldest is not None and oldest > s.health_max_age:
        status = "lagging"
    else:
        status = "ok"
    details = {
        "status": status,
        "broker": stages is not None,
        "store": store is not None,
        "queues": {q: st["messages"] for q, st in stages.items()} if stages else None,
        "stages": {"spool": spool, **(stages or {})},
        "oldest_waiting_seconds": oldest,
        "max_age_seconds": s.health_max_age,
        "spool": spool,
        **(store or {}),
    }
    return status == "ok", details
