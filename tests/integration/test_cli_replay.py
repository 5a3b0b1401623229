"""`eventlog dead-letters replay` through the real pipeline: a write the store refused (a unique
index, the test's own) is stored by a replay once the index is gone, its letter removed; an
enrich-stage letter of a valid event is stored too; replaying twice stores each event once."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from deploy.stack import PYTHON, ROOT
from pipeline.events import dead_letter
from tests.helpers.mongo import private_database
from tests.helpers.pipeline import Pipeline, purge_queues, wait_until
from tests.integration.test_ingest import publish, raw_event

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(tmp_path: Path, redis_url: str, demo_var_dir: Path) -> Iterator[Pipeline]:
    # A server of its own: the test's unique index must see only its own page views (one nx-27017
    # --db file is one namespace, shared by every database name of the session's server).
    with private_database(tmp_path / "nx", "eventlog_replay") as db:
        host, port = db.client.address
        url = os.environ.get("EVENTLOG_MONGO_URL") or f"mongodb://{host}:{port}"
        purge_queues(redis_url)
        p = Pipeline(tmp_path / "p", redis_url, url, db.name, demo_var_dir)
        p.tmp.mkdir()
        p.db = db
        try:
            yield p
        finally:
            p.close()


def replay(p: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "tasks", "dead-letters", "replay", *args], cwd=ROOT,
                          env={**os.environ, **p.env()}, capture_output=True, text=True, timeout=120)


def test_a_refused_write_replayed_after_the_fix_is_stored_once(pipeline: Pipeline, redis_url: str) -> None:
    db = pipeline.db
    db.website_logs.create_index("path_info", unique=True, name="test_unique_path")
    pipeline.worker()
    tag = uuid.uuid4().hex[:8]
    first, clash = raw_event(f"/replay/{tag}"), raw_event(f"/replay/{tag}")
    publish(redis_url, [first])
    wait_until(lambda: db.website_logs.find_one({"_id": first["event_id"]}), 60, "the first page view")
    publish(redis_url, [clash])
    wait_until(lambda: db.dead_letters.count_documents({"stage": "store"}) == 1, 60, "the dead letter")

    refused_again = replay(pipeline, "--all", "--wait", "5")  # before the fix: refused again, one letter
    assert refused_again.returncode == 1 and "0 stored" in refused_again.stdout, refused_again.stdout
    assert db.dead_letters.count_documents({}) == 1
    assert db.dead_letters.find_one({})["replays"] == 1

    db.website_logs.drop_index([("path_info", 1)])  # the fix (by key: nx-27017 names indexes its own way)
    answer = replay(pipeline, "--all", "--wait", "60")
    assert answer.returncode == 0, answer.stdout + answer.stderr + pipeline.logs()
    assert "replayed 1: 1 stored (removed), 0 not stored yet" in answer.stdout
    assert db.dead_letters.count_documents({}) == 0
    stored = db.website_logs.find_one({"_id": clash["event_id"]})
    assert stored["path_info"] == f"/replay/{tag}" and stored["event_name"] and stored["country_code"] == "GB"
    again = replay(pipeline, "--all")
    assert again.returncode == 0 and again.stdout.startswith("0 letters")
    assert db.website_logs.count_documents({"path_info": f"/replay/{tag}"}) == 2  # first + clash, once each


def test_enrich_letters_replayed_twice_store_once(pipeline: Pipeline) -> None:
    db = pipeline.db
    tag = uuid.uuid4().hex[:8]
    lines = [orjson.dumps(raw_event(f"/replay-enrich/{tag}/{i}")).decode() for i in range(3)]
    # As an older version that refused these (valid) lines would have left them.
    db.dead_letters.insert_many([dead_letter(line, "refused by an older version", "enrich") for line in lines])
    # Two replays before any worker runs: every line is sent twice.
    for _ in range(2):
        sent = replay(pipeline, "--all", "--wait", "0")
        assert "3 to replay" in sent.stdout, sent.stdout + sent.stderr
    pipeline.worker()
    settled = replay(pipeline, "--all", "--wait", "60")
    assert settled.returncode == 0, settled.stdout + settled.stderr + pipeline.logs()
    wait_until(lambda: db.website_logs.count_documents({"path_info": {"$regex": f"^/replay-enrich/{tag}/"}}) == 3,
               60, "the replayed page views")
    assert db.dead_letters.count_documents({}) == 0
    ids = [orjson.loads(line)["event_id"] for line in lines]
    assert sorted(d["_id"] for d in db.website_logs.find({"_id": {"$in": ids}})) == sorted(ids)
