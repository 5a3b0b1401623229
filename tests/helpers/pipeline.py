"""A real pipeline for one test: Celery workers and a gunicorn demo site as
subprocesses, wired to the session's broker and store."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from kombu import Connection

from celeryconfig import ENRICH_QUEUE, ROLLUP_QUEUE, STORE_QUEUE
from deploy.stack import ROOT, Proc, free_port, wait_for_port, web_proc, worker_proc


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def logged_in(site: Pipeline, username: str, password: str,
              session: requests.Session | None = None) -> requests.Session:
    """A session logged in to the demo site through its login form (CSRF cookie and token, as a browser)."""
    session = session or requests.Session()
    session.get(site.url("/accounts/login/"), timeout=10)
    answer = session.post(site.url("/accounts/login/"), timeout=10, allow_redirects=False,
                          data={"username": username, "password": password,
                                "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                          headers={"Referer": site.url("/accounts/login/")})
    assert answer.status_code == 302, answer.status_code
    return session


def purge_queues(broker_url: str) -> None:
    """Empty the stage queues (and, on Redis, what earlier tests' killed workers left unacknowledged)."""
    with Connection(broker_url, connect_timeout=5) as conn:
        channel = conn.channel()
        if conn.transport.driver_type == "redis":
            channel.client.delete(channel.unacked_key, channel.unacked_index_key, channel.unacked_mutex_key)
        for queue in (ENRICH_QUEUE, STORE_QUEUE, ROLLUP_QUEUE):
            try:
                channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - queue not declared yet
                channel = conn.channel()


class Pipeline:
    """Processes started for a test; everything is stopped by close()."""

    def __init__(self, tmp: Path, broker_url: str, mongo_url: str, mongo_db: str, var_dir: Path,
                 **settings: Any) -> None:
        self.tmp = tmp
        self.broker_url = broker_url
        self.mongo_url = mongo_url
        self.mongo_db = mongo_db
        self.spool_dir = tmp / "spool"
        self.var_dir = var_dir
        self.settings = {
            "EVENTLOG_SHIP_INTERVAL": "100",
            "EVENTLOG_FLUSH_INTERVAL": "0.5",
            "EVENTLOG_BATCH_SIZE": "200",
            "EVENTLOG_GEOIP_CITY_DB": str(ROOT.parent / "shared" / "testdata" / "geoip" / "GeoIP2-City-Test.mmdb"),
            # MaxMind's test database locates /31 and /29 networks that an anonymised address
            # leaves (docs/retention.md); tests that check anonymisation turn it on themselves.
            "EVENTLOG_ANONYMIZE_IP": "false",
            **{f"EVENTLOG_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.procs: list[Proc] = []
        self.web_port = 0
        self._n = 0

    def env(self, broker_url: str | None = None, mongo_url: str | None = None) -> dict[str, str]:
        return {
            **self.settings,
            "EVENTLOG_BROKER_URL": broker_url or self.broker_url,
            "EVENTLOG_MONGO_URL": mongo_url or self.mongo_url,
            "EVENTLOG_MONGO_DB": self.mongo_db,
            "EVENTLOG_SPOOL_DIR": str(self.spool_dir),
            "EVENTLOG_VAR_DIR": str(self.var_dir),
            "PYTHONPATH": str(ROOT),
        }

    def _log(self, name: str) -> Path:
        self._n += 1
        return self.tmp / f"{self._n:02d}-{name}.log"

    def worker(self, queues: str = f"{ENRICH_QUEUE},{STORE_QUEUE}", mongo_url: str | None = None,
               concurrency: int = 2) -> Proc:
        log = self._log("worker")
        proc = worker_proc(f"w{self._n}", queues, self.env(mongo_url=mongo_url), concurrency, log).start()
        self.procs.append(proc)
        wait_until(lambda: log.exists() and "ready." in log.read_text(errors="replace"), 60, "worker ready")
        return proc

    def web(self, broker_url: str | None = None, workers: int = 2) -> Proc:
        self.web_port = free_port()
        proc = web_proc(self.web_port, self.env(broker_url=broker_url), workers, self._log("web")).start()
        self.procs.append(proc)
        wait_for_port("127.0.0.1", self.web_port, 60, "gunicorn")
        return proc

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url(path), timeout=10, **kwargs)

    def logs(self) -> str:
        parts = [f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.tmp.glob("*.log"))]
        return "\n".join(parts)

    def logs_full(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("*.log")))

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=10)


@contextmanager
def live_site(tmp: Path, broker_url: str, mongo: Any, var_dir: Path, **settings: Any) -> Iterator[Pipeline]:
    """A worker for both stages and a 2-process demo site, for a module of tests."""
    purge_queues(broker_url)
    pipeline = Pipeline(tmp, broker_url, mongo.url, mongo.db, var_dir, **settings)
    try:
        pipeline.worker()
        pipeline.web(workers=2)
        yield pipeline
    finally:
        pipeline.close()
