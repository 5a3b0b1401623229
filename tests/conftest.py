"""Session fixtures: the real services every integration test talks to.

- MongoDB: EVENTLOG_MONGO_URL if set (a real server; a fresh database per run),
  otherwise nx-27017 started here on a free port with its data in a temp dir.
- Redis: the one on 127.0.0.1:6379 (database 9, flushed) if it answers,
  otherwise a private redis-server on a free port.
- RabbitMQ: 127.0.0.1:5672 (`make services` starts it).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
import redis
from hypothesis import settings as hypothesis_settings

from deploy.stack import PYTHON, ROOT, free_port, nx_proc, port_answers, redis_proc, wait_for_port
from tests.helpers.pipeline import Pipeline, purge_queues

# `make test` replays the same examples every run, so CI fails only on a change
# that breaks them; `make fuzz` (HYPOTHESIS_PROFILE=fuzz) explores fresh random
# examples, twenty times as many, and prints how to replay anything it finds.
hypothesis_settings.register_profile("default", max_examples=1500, derandomize=True, print_blob=True)
hypothesis_settings.register_profile("fuzz", max_examples=30000, derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

GEOIP_DIR = ROOT.parent / "shared" / "testdata" / "geoip"


class MongoServer:
    def __init__(self, url: str, db: str, proc=None, data_dir: Path | None = None, port: int = 0) -> None:  # noqa: ANN001
        self.url, self.db, self.proc, self.data_dir, self.port = url, db, proc, data_dir, port
        self.client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000, tz_aware=True)

    @property
    def database(self) -> pymongo.database.Database:
        return self.client[self.db]


@pytest.fixture(scope="session")
def mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    external = os.environ.get("EVENTLOG_MONGO_URL")
    if external:
        server = MongoServer(external, f"eventlog_test_{uuid.uuid4().hex[:8]}")
        yield server
        server.client.drop_database(server.db)
        return
    port = free_port()
    data_dir = tmp_path_factory.mktemp("nx")
    proc = nx_proc(port, data_dir, data_dir / "stdout.log").start()
    wait_for_port("127.0.0.1", port, 30, "nx-27017")
    server = MongoServer(f"mongodb://127.0.0.1:{port}", "logs", proc, data_dir, port)
    yield server
    server.client.close()
    proc.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if port_answers("127.0.0.1", 6379):
        # A database of its own (EVENTLOG_TEST_REDIS_DB) lets two test sessions share the server.
        url = f"redis://127.0.0.1:6379/{int(os.environ.get('EVENTLOG_TEST_REDIS_DB', '9'))}"
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    port = free_port()
    proc = redis_proc(port, tmp_path_factory.mktemp("redis")).start()
    wait_for_port("127.0.0.1", port, 30, "redis-server")
    yield f"redis://127.0.0.1:{port}/0"
    proc.stop()


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    if not port_answers("127.0.0.1", 5672):
        pytest.fail("RabbitMQ does not answer on 127.0.0.1:5672: run `make services` (make test does)")
    return "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture(scope="session")
def demo_var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo site's own SQLite database (users), migrated and seeded once."""
    var = tmp_path_factory.mktemp("demo-var")
    env = {**os.environ, "EVENTLOG_VAR_DIR": str(var), "PYTHONPATH": str(ROOT)}
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    return var


@pytest.fixture
def make_pipeline(tmp_path: Path, mongo: MongoServer, redis_url: str, demo_var_dir: Path,
                  request: pytest.FixtureRequest):
    """Factory: make_pipeline(broker_url=None, **EVENTLOG settings) -> Pipeline."""
    made: list[Pipeline] = []

    def make(broker_url: str | None = None, **settings: object) -> Pipeline:
        broker = broker_url or redis_url
        purge_queues(broker)
        pipeline = Pipeline(tmp_path / f"p{len(made)}", broker, mongo.url, mongo.db, demo_var_dir, **settings)
        pipeline.tmp.mkdir()
        made.append(pipeline)
        return pipeline

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for pipeline in made:
        if failed:
            print(pipeline.logs())
        pipeline.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
