"""RabbitMQ quorum queues (EVENTLOG_QUEUE_TYPE=quorum) on the machine's RabbitMQ.

Each test gets a vhost of its own (a queue's type is fixed when it is declared, and the
shared vhost "/" holds classic eventlog queues), deleted afterwards.
- page views go through the real pipeline and are stored once each, with the stage
  queues declared as quorum queues, and the store's window still counted in events
  (quorum queues only take a per-consumer prefetch, which RabbitMQ applies to new
  consumers only: without re-registering its consumer the store stays at 8 messages);
- a poison message (a store batch whose task raises every time) goes to eventlog.dead
  after the delivery limit instead of coming back forever;
- health/'s look at a waiting message does not count as a delivery;
- the spool is trimmed only after the broker confirmed: publishes the broker refuses
  (a full queue nacks them) stay spooled, and ship once it takes them again.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

import tasks.health
from deploy.stack import PYTHON, ROOT
from tasks.headers import PUBLISHED_HEADER
from tests.helpers.pipeline import Pipeline, wait_until
from tests.helpers.traffic import answered_then_stored

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="rabbitmqctl is not installed")]

FLUSH = re.compile(r"stored (\d+) events \((\d+) already stored, (\d+) merged, \d+ refused, \d+ dead letters\) "
                   r"from (\d+) messages")
# celeryconfig's worker_prefetch_multiplier (4 at these settings) x 2 pool processes: the
# static per-consumer prefetch a store worker on quorum queues would keep without the fix.
INITIAL_PREFETCH = 8


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture
def vhost(rabbit_url: str) -> Iterator[str]:
    name = f"eventlog-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


def queues(vhost: str) -> dict[str, dict[str, str]]:
    """name -> {type, messages, messages_unacknowledged} of the vhost's queues."""
    out = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "type", "messages",
                      "messages_unacknowledged")
    rows = (line.split("\t") for line in out.splitlines() if line.strip())
    return {r[0]: {"type": r[1], "messages": int(r[2]), "unacked": int(r[3])} for r in rows}


def quorum_pipeline(tmp_path, mongo, demo_var_dir, vhost: str, **settings: object) -> Pipeline:  # noqa: ANN001
    broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    pipeline = Pipeline(tmp_path / "p", broker, mongo.url, mongo.db, demo_var_dir, queue_type="quorum", **settings)
    pipeline.tmp.mkdir()
    return pipeline


def test_page_views_are_stored_through_quorum_queues(tmp_path, mongo, demo_var_dir, vhost) -> None:  # noqa: ANN001
    pipeline = quorum_pipeline(tmp_path, mongo, demo_var_dir, vhost, batch_size=200, flush_interval=1.0)
    try:
        pipeline.worker(queues="eventlog.enrich")
        store = pipeline.worker(queues="eventlog.store")
        # Four web processes at 60 page views/s: messages of one or two events each, which
        # only a window counted in events gathers into full batches.
        pipeline.web(workers=4)
        answered, counts = answered_then_stored(pipeline.url(""), mongo.database.website_logs, settle=2)
        assert all(counts[r] == 1 for r in answered), [r for r in answered if counts[r] != 1]
        declared = queues(vhost)
        for name in ("eventlog.enrich", "eventlog.store", "eventlog.dead"):
            assert declared[name]["type"] == "quorum", declared
        assert declared["eventlog.dead"]["messages"] == 0, declared
        flushes = [(int(m[1]) + int(m[2]), int(m[4])) for m in FLUSH.finditer(store.log.read_text())]
        assert max(messages for _, messages in flushes) > INITIAL_PREFETCH, flushes
        assert "registered again with a prefetch of" in store.log.read_text()
    finally:
        pipeline.close()


def test_a_poison_message_is_dead_lettered_after_the_delivery_limit(tmp_path, mongo, demo_var_dir, vhost) -> None:  # noqa: ANN001
    limit = 3
    pipeline = quorum_pipeline(tmp_path, mongo, demo_var_dir, vhost, delivery_limit=limit, flush_interval=0.5)
    try:
        store = pipeline.worker(queues="eventlog.store")
        # A store message whose task raises every time (its events are not a list): the store
        # sends a failed batch back to the queue, so on a classic queue it would loop forever.
        poison = "from tasks.app import app; app.send_task('eventlog.store_events', args=[5, []], retry=False)"
        subprocess.run([PYTHON, "-c", poison], cwd=ROOT, env=pipeline.env(), check=True, timeout=60)

        def failures() -> int:
            return store.log.read_text(errors="replace").count("store task failed; 1 messages go back")

        wait_until(lambda: queues(vhost)["eventlog.dead"]["messages"] == 1, 60, "the poison message dead-lettered")
        settled = failures()
        time.sleep(3)  # nothing delivers it again
        assert failures() == settled == limit + 1, store.log.read_text()[-3000:]
        # Quorum queues report their length every few seconds.
        wait_until(lambda: queues(vhost)["eventlog.store"] == {"type": "quorum", "messages": 0, "unacked": 0}, 30,
                   "the store queue empty")
        with Connection(pipeline.broker_url) as conn:
            message = conn.SimpleQueue("eventlog.dead", no_ack=False,
                                       queue_args={"x-queue-type": "quorum"}).get(timeout=5)
            assert message.headers["task"] == "eventlog.store_events"
            assert message.headers["x-death"][0]["reason"] == "delivery_limit", message.headers
            message.ack()
    finally:
        pipeline.close()


def test_health_looks_at_a_waiting_message_without_counting_a_delivery(vhost, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(tasks.health, "QUEUE_TYPE", "quorum")
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        waiting = conn.SimpleQueue("probe", queue_args={"x-queue-type": "quorum", "x-delivery-limit": 1})
        waiting.put({"n": 1}, headers={PUBLISHED_HEADER: time.time()})
        for _ in range(3):  # a monitor polling health/
            stage = tasks.health._amqp_stage(conn, "probe", time.time())
            assert stage["messages"] == 1, stage
        message = waiting.get(timeout=5)
        assert message.headers.get("x-delivery-count", 0) == 0, message.headers
        message.ack()


SHIP = """
import json, sys
from pathlib import Path
from pipeline.shipper import Shipper
from pipeline.spool import Spool
from tasks.app import app
from tasks.publish import publish_batch

spool_dir, phase = sys.argv[1], sys.argv[2]
if phase == "declare":
    with app.connection_for_write() as conn:
        for queue in app.conf.task_queues:
            queue(conn.default_channel).declare()
    sys.exit(0)
spool = Spool(spool_dir)
shipper = Shipper(spool, publish_batch, batch=10, raw=True)
if phase == "append":
    for n in range(25):
        spool.append({"event_id": f"{n:032x}", "path_info": "/"})
try:
    shipped, error = shipper.run_once(), None  # adopts the segments an earlier phase left
except Exception as exc:
    shipped, error = 0, type(exc).__name__
trimmed = 0  # events before the segment's recorded offset: what the broker confirmed
for off in Path(spool_dir).glob("*.seg.off"):
    trimmed += Path(str(off)[:-4]).read_bytes()[: int(off.read_text())].count(b"\\n")
print(json.dumps({"shipped": shipped, "error": error, "trimmed": trimmed, "files": sorted(
    p.name.split(".", 1)[1] for p in Path(spool_dir).iterdir() if not p.name.endswith(".lock"))}))
"""


def test_the_spool_keeps_what_the_broker_did_not_confirm(tmp_path, vhost) -> None:  # noqa: ANN001
    broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    env = {"EVENTLOG_BROKER_URL": broker, "EVENTLOG_QUEUE_TYPE": "quorum", "PYTHONPATH": str(ROOT)}
    spool = tmp_path / "spool"

    def phase(name: str) -> dict:
        out = subprocess.run([PYTHON, "-c", SHIP, str(spool), name], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}

    phase("declare")
    # A full queue: with the stage queues' x-overflow=reject-publish RabbitMQ nacks publishes
    # beyond max-length (a quorum queue confirms up to one more than the limit).
    rabbitmqctl("set_policy", "-p", vhost, "full", r"^eventlog\.enrich$", '{"max-length": 1}', "--apply-to", "queues")
    wait_until(lambda: "full" in rabbitmqctl("list_queues", "-p", vhost, "name", "policy"), 30, "the policy applied")
    refused = phase("append")
    assert refused["error"] == "OperationalError" and refused["shipped"] == 0, refused
    # Trimmed up to the confirmed batches only (the offset); the refused ones wait in the segment.
    assert refused["files"] == ["0000000000.seg", "0000000000.seg.off"], refused
    assert refused["trimmed"] in (10, 20), refused
    rabbitmqctl("clear_policy", "-p", vhost, "full")
    shipped = phase("ship")
    assert shipped["error"] is None and shipped["files"] == [], shipped
    assert refused["trimmed"] + shipped["shipped"] == 25, (refused, shipped)
    # Quorum queues report their length every few seconds.
    wait_until(lambda: queues(vhost)["eventlog.enrich"]["messages"] == 3, 30, "25 events in 3 messages")
