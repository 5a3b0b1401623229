"""The operator CLI (`python -m tasks`, the `eventlog` script) against the session's Redis and
nx-27017, without workers: status as health/ sees it, listing dead letters, what a replay sends
and what it removes, and the demo stack's commands inside and outside a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from celeryconfig import ENRICH_QUEUE
from deploy.stack import PYTHON, ROOT
from pipeline.events import dead_letter
from pipeline.store import EventStore
from tests.helpers.pipeline import purge_queues
from tests.integration.test_ingest import raw_event


@pytest.fixture
def store(mongo) -> Iterator[EventStore]:  # noqa: ANN001
    s = EventStore(mongo.url, f"cli_{uuid.uuid4().hex[:8]}")
    yield s
    s.client.drop_database(s.db.name)
    s.client.close()


@pytest.fixture
def cli(store: EventStore, redis_url: str, tmp_path: Path):  # noqa: ANN201
    purge_queues(redis_url)
    env = {**os.environ, "EVENTLOG_BROKER_URL": redis_url, "EVENTLOG_MONGO_URL": store.client.address and
           f"mongodb://{store.client.address[0]}:{store.client.address[1]}", "EVENTLOG_MONGO_DB": store.db.name,
           "EVENTLOG_SPOOL_DIR": str(tmp_path / "spool"), "EVENTLOG_VAR_DIR": str(tmp_path / "var")}

    def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "tasks", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=120)

    yield run
    purge_queues(redis_url)


def _queued(redis_url: str) -> int:
    return redis.Redis.from_url(redis_url).llen(ENRICH_QUEUE)


def test_status_reports_what_health_reports(cli, store: EventStore) -> None:  # noqa: ANN001
    store.store_dead_letters([dead_letter("{torn", "torn", stage="enrich")])
    answer = cli("status", "--json")
    details = json.loads(answer.stdout)
    assert answer.returncode == 0, answer.stderr
    assert details["status"] == "ok" and details["dead_letters"] == 1
    assert set(details["stages"]) == {"spool", "eventlog.enrich", "eventlog.store"}
    table = cli("status")
    assert table.returncode == 0 and "dead letters    1" in table.stdout and "eventlog.enrich" in table.stdout
    assert details["rollups_pending_hours"] == 0 and details["rollups_running"] is False
    assert "rollups         " in table.stdout


def test_status_exits_1_when_the_store_is_away(cli, store: EventStore, redis_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    env = {**os.environ, "EVENTLOG_BROKER_URL": redis_url, "EVENTLOG_MONGO_URL": "mongodb://ops:pw@127.0.0.1:9",
           "EVENTLOG_SPOOL_DIR": str(tmp_path / "spool")}
    answer = subprocess.run([PYTHON, "-m", "tasks", "status"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert answer.returncode == 1 and "store unreachable" in answer.stdout
    assert "pw@" not in answer.stdout and "ops:***@127.0.0.1:9" in answer.stdout


def test_list_shows_each_letter_and_whether_it_can_be_replayed(cli, store: EventStore) -> None:  # noqa: ANN001
    good = dead_letter(orjson.dumps(raw_event("/cdcontent/")).decode(), "refused by an older version", "enrich")
    torn = dead_letter("{torn", "spool line is not valid JSON", "enrich")
    store.store_dead_letters([good, torn])
    answer = cli("dead-letters", "list")
    assert answer.returncode == 0, answer.stderr
    assert f"{good['_id']}  enrich" in answer.stdout and "refused by an older version" in answer.stdout
    assert "not replayable: still invalid" in answer.stdout and "2 dead letters" in answer.stdout
    rows = [json.loads(line) for line in cli("dead-letters", "list", "--json").stdout.splitlines()]
    assert {r["id"]: r["replayable"] for r in rows} == {good["_id"]: True, torn["_id"]: False}


def test_replay_needs_ids_or_all(cli) -> None:  # noqa: ANN001
    answer = cli("dead-letters", "replay")
    assert answer.returncode == 2 and "--all" in answer.stderr


def test_replay_sends_a_letter_once_and_removes_one_already_stored(cli, store: EventStore,  # noqa: ANN001
                                                                   redis_url: str) -> None:
    from pipeline.enrich import enrich_events

    stored_line = orjson.dumps(raw_event("/stored/")).decode()
    (write,), _ = enrich_events([stored_line], None)
    store.store_or_dead_letter([write])  # a redelivery stored it after it was dead-lettered
    waiting_line = orjson.dumps(raw_event("/waiting/")).decode()
    stored, waiting = (dead_letter(line, "refused", "enrich") for line in (stored_line, waiting_line))
    store.store_dead_letters([stored, waiting])

    dry = cli("dead-letters", "replay", "--all", "--dry-run")
    assert dry.returncode == 0 and "1 already stored" in dry.stdout and "1 to replay" in dry.stdout
    assert _queued(redis_url) == 0 and store.dead_letters.count_documents({}) == 2

    answer = cli("dead-letters", "replay", "--all", "--wait", "0")
    assert answer.returncode == 1, answer.stdout + answer.stderr  # no worker here: not stored yet
    assert "1 already stored (removed)" in answer.stdout and "replayed 1: 0 stored" in answer.stdout
    assert _queued(redis_url) == 1  # one message to eventlog.enrich, carrying the line as shipped
    assert store.dead_letters.find_one({"_id": stored["_id"]}) is None
    assert store.dead_letters.find_one({"_id": waiting["_id"]})["replays"] == 1


def test_replay_of_an_unknown_id_says_so(cli) -> None:  # noqa: ANN001
    answer = cli("dead-letters", "replay", "0" * 32, "--wait", "0")
    assert answer.returncode == 1 and "no such dead letter" in answer.stderr


def test_the_stack_commands_delegate_to_deploy_stack_in_a_checkout(cli) -> None:  # noqa: ANN001
    # (From an installed package alone they refuse: tests/integration/test_new_site.py.)
    inside = cli("stack", "status")
    assert inside.returncode == 0, inside.stderr
    assert cli("stack", "sideways").returncode == 2
