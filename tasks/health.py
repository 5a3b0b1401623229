"""Health figures of the pipeline, for the health endpoint and `make demo`."""

from __future__ import annotations

from typing import Any

from amqp.exceptions import ChannelError
from pymongo.errors import PyMongoError

from celeryconfig import ENRICH_QUEUE, STORE_QUEUE
from pipeline.config import Settings
from pipeline.spool import spool_size
from pipeline.store import DEAD_LETTERS, WEBSITE_LOGS, connect
from tasks.app import app
from tasks.resources import settings


def _depth(conn: Any, queue: str) -> int:
    try:
        return conn.default_channel.queue_declare(queue, passive=True).message_count
    except ChannelError:
        # Redis has no empty lists: a queue never used or drained is "not found".
        conn.default_channel  # noqa: B018 - a failed passive declare closes AMQP channels
        return 0


def queue_depths() -> dict[str, int] | None:
    """Messages waiting in each stage's queue; None if the broker is unreachable."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            return {q: _depth(conn, q) for q in (ENRICH_QUEUE, STORE_QUEUE)}
    except Exception:  # noqa: BLE001 - any broker failure means "not healthy"
        return None


def store_figures(s: Settings) -> dict[str, Any] | None:
    """Stored and dead-lettered counts and the lag of the newest stored event."""
    client = connect(s.mongo_url, timeout_ms=2000)
    try:
        db = client[s.mongo_db]
        newest = db[WEBSITE_LOGS].find_one({}, {"datetime": 1, "stored_at": 1}, sort=[("stored_at", -1)])
        lag = (newest["stored_at"] - newest["datetime"]).total_seconds() if newest else None
        return {
            "events": db[WEBSITE_LOGS].estimated_document_count(),
            "dead_letters": db[DEAD_LETTERS].count_documents({}),
            "last_lag_seconds": lag,
        }
    except PyMongoError:
        return None
    finally:
        client.close()


def health(s: Settings | None = None) -> tuple[bool, dict[str, Any]]:
    """(healthy, details): healthy when both broker and store answer.

    ``s``: the settings of the caller (a web process passes its Django-side ones,
    which may differ from the environment's); default: the environment's.
    """
    s = s or settings()
    queues = queue_depths()
    store = store_figures(s)
    details = {
        "broker": queues is not None,
        "store": store is not None,
        "queues": queues,
        "spool": spool_size(s.spool_dir),
        **(store or {}),
    }
    return queues is not None and store is not None, details
