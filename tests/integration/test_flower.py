"""Operations: Flower as `make up` starts it (deploy.stack.flower_proc, basic auth)
answers only with credentials and serves Prometheus metrics; `celery -A tasks
inspect` and friends reach a real worker."""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import Iterator

import pytest
import requests

from celeryconfig import ROLLUP_QUEUE
from deploy.stack import BIN, ROOT, flower_proc, free_port, wait_for_port
from tests.helpers.pipeline import Pipeline, wait_until

pytestmark = pytest.mark.integration

USER = "ops"


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mongo, redis_url: str, demo_var_dir,  # noqa: ANN001
         password: str) -> Iterator[tuple[Pipeline, str]]:
    pipeline = Pipeline(tmp_path_factory.mktemp("flower"), redis_url, mongo.url, mongo.db, demo_var_dir)
    try:
        pipeline.worker(queues=ROLLUP_QUEUE, concurrency=1)
        port = free_port()
        flower = flower_proc(port, pipeline.env(), USER, password, pipeline.tmp / "flower.log").start()
        try:
            wait_for_port("127.0.0.1", port, 60, "flower")
            yield pipeline, f"http://127.0.0.1:{port}"
        finally:
            flower.stop(timeout=2)  # Flower keeps no state; no need to wait out a slow shutdown
    finally:
        pipeline.close()


def get(url: str, auth: tuple[str, str] | None = None) -> requests.Response:
    return requests.get(url, auth=auth, timeout=15)


def test_flower_refuses_requests_without_the_right_credentials(site: tuple[Pipeline, str]) -> None:
    _, base = site
    for path in ("/", "/workers", "/api/workers", "/tasks"):
        assert get(base + path).status_code == 401, path
        assert get(base + path, (USER, "wrong-password")).status_code == 401, path
    assert get(base + "/", ("someone", "else")).status_code == 401


def test_flower_answers_with_credentials(site: tuple[Pipeline, str], password: str) -> None:
    _, base = site
    page = get(base + "/", (USER, password))
    assert page.status_code == 200 and "Flower" in page.text
    workers = wait_until(lambda: (r := get(base + "/api/workers?refresh=1", (USER, password))).ok and r.json(),
                         30, "Flower to see the worker")
    assert any(name.startswith("w") for name in workers)


def test_prometheus_metrics_answer_with_credentials(site: tuple[Pipeline, str], password: str) -> None:
    _, base = site
    metrics = wait_until(lambda: (r := get(base + "/metrics", (USER, password))).ok
                         and "flower_worker_online" in r.text and r, 30, "worker metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE flower_events_total counter" in metrics.text


def celery(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "celery"), "-A", "tasks", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_celery_inspect_and_friends_reach_the_worker(site: tuple[Pipeline, str]) -> None:
    pipeline, _ = site
    env = {"PATH": "/usr/bin:/bin", **pipeline.env()}
    # Naming the worker lets inspect return on its reply instead of waiting out the timeout.
    worker = ["--destination", f"w1@{socket.gethostname()}", "--timeout", "10"]
    ping = celery("inspect", "ping", *worker, env=env)
    assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
    queues = celery("inspect", "active_queues", *worker, env=env)
    assert queues.returncode == 0 and ROLLUP_QUEUE in queues.stdout
    registered = celery("inspect", "registered", *worker, env=env)
    assert "eventlog.rollup.run" in registered.stdout and "eventlog.store_events" in registered.stdout
    status = celery("status", "--timeout", "1.5", env=env)
    assert status.returncode == 0 and "online" in status.stdout
