"""A document the store refuses is dead-lettered by the real store worker, the rest of its
batch is stored, and only then is the batch acknowledged (nothing is left unacked)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from tests.helpers.mongo import private_database
from tests.helpers.pipeline import Pipeline, purge_queues, wait_until
from tests.integration.test_ingest import publish, raw_event

pytestmark = pytest.mark.integration


def unacked(broker_url: str) -> int:
    with Connection(broker_url) as conn:
        channel = conn.default_channel
        return channel.client.hlen(channel.unacked_key)


def test_refused_document_is_dead_lettered_and_its_batch_acknowledged(tmp_path: Path, redis_url: str,
                                                                      demo_var_dir: Path) -> None:
    with private_database(tmp_path / "nx", "eventlog_refusals") as db:
        host, port = db.client.address
        url = os.environ.get("EVENTLOG_MONGO_URL") or f"mongodb://{host}:{port}"
        # The test's own unique index: the server refuses a second page view of one path.
        db.website_logs.create_index("path_info", unique=True, name="test_unique_path")
        purge_queues(redis_url)
        pipeline = Pipeline(tmp_path / "p", redis_url, url, db.name, demo_var_dir)
        pipeline.tmp.mkdir()
        try:
            pipeline.worker()
            tag = uuid.uuid4().hex[:8]
            events = [raw_event(f"/refused/{tag}/{i}") for i in range(10)]
            clash = raw_event(f"/refused/{tag}/3")
            publish(redis_url, events[:5])
            publish(redis_url, [*events[5:], clash])
            wait_until(lambda: db.dead_letters.count_documents({"stage": "store"}) == 1, 60, "the dead letter")
            stored = {d["_id"] for d in db.website_logs.find({"path_info": {"$regex": f"^/refused/{tag}/"}})}
            # The two messages are enriched in parallel, so either page view of /3 may reach the
            # store first; the other one is the refused document.
            rivals = {events[3]["event_id"], clash["event_id"]}
            others = {e["event_id"] for e in events} - rivals
            assert others <= stored and len(stored & rivals) == 1, stored
            letter = db.dead_letters.find_one({"stage": "store"})
            assert {json.loads(letter["raw"])["_id"]} == rivals - stored
            assert "11000" in letter["reason"] or "duplicate" in letter["reason"].lower() or \
                "UNIQUE" in letter["reason"], letter["reason"]
            wait_until(lambda: unacked(redis_url) == 0, 20, "every message acknowledged")
            assert "dead-lettered" in pipeline.logs()
        finally:
            pipeline.close()
