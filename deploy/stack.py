"""The local eventlog stack: start what is missing, stop only what we started.

Used by `make up` / `make down` / `make demo` and by the test fixtures, so the
demo and the tests run the very same processes:

    python -m deploy.stack up      # start, print URLs, return once all answer
    python -m deploy.stack down    # stop what `up` started (and nothing else)
    python -m deploy.stack status

Everything binds to 127.0.0.1. Process ids go to var/run/stack.json.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pipeline.config import safe_url

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("EVENTLOG_VAR_DIR", ROOT / "var"))
RUN = VAR / "run"
STATE = RUN / "stack.json"
PYTHON = sys.executable
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
EXPLICIT_WAIT = 10.0  # seconds an explicitly configured broker or store gets to answer
BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_answers(host, port):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what or 'service'} did not answer on {host}:{port} within {timeout:.0f}s")


def url_answers(url: str) -> bool:
    parsed = urlparse(url)
    default = {"redis": 6379, "amqp": 5672, "pyamqp": 5672, "mongodb": 27017}.get(parsed.scheme, 0)
    return port_answers(parsed.hostname or "127.0.0.1", parsed.port or default)


def geolite_city_db() -> str:
    """The full GeoLite2-City database shipped by the maxminddb-geolite2 package."""
    path = Path(sysconfig.get_paths()["purelib"]) / "_maxminddb_geolite2" / "GeoLite2-City.mmdb"
    return str(path) if path.exists() else ""


@dataclass
class Proc:
    """A child process in its own session (so a stop takes its children too)."""

    name: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log: Path | None = None
    popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        log = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.popen = subprocess.Popen(
            self.cmd, cwd=ROOT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            stop_group(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        stop_group(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_group(self.pid, signal.SIGKILL)
            self.popen.wait(5)


def stop_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def ensure_redis_server() -> str:
    """Path of redis-server, installing Debian's package if it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    print("redis-server not found: installing Debian's redis-server", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_proc(port: int, data_dir: Path, log: Path | None = None) -> Proc:
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [ensure_redis_server(), str(ROOT / "deploy" / "redis.conf"), "--port", str(port),
           "--dir", str(data_dir)]
    return Proc("redis", cmd, log=log)


def nx_proc(port: int, data_dir: Path, log: Path | None = None) -> Proc:
    """nx-27017 (a MongoDB wire-protocol server on SQLite) as its own process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(BIN / "nx-27017"), "--db", str(data_dir / "eventlog.db"), "--host", "127.0.0.1",
           "-p", str(port), "--log-file", str(data_dir / "nx.log"), "--pid-file", str(data_dir / "nx.pid")]
    return Proc("mongo", cmd, log=log)


def worker_proc(name: str, queues: str, env: dict[str, str], concurrency: int = 2,
                log: Path | None = None, extra: list[str] | None = None) -> Proc:
    cmd = [str(BIN / "celery"), "-A", "tasks", "worker", "-Q", queues, "-n", f"{name}@%h",
           "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip",
           "--without-mingle", *(extra or [])]
    return Proc(name, cmd, env=env, log=log)


def web_proc(port: int, env: dict[str, str], workers: int = 3, log: Path | None = None) -> Proc:
    cmd = [str(BIN / "gunicorn"), "demo.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(workers),
           "--access-logfile", "-", "--graceful-timeout", "10"]
    return Proc("web", cmd, env=env, log=log)


def beat_proc(env: dict[str, str], log: Path | None = None) -> Proc:
    cmd = [str(BIN / "celery"), "-A", "tasks", "beat", "--loglevel", "INFO",
           "-s", str(RUN / "celerybeat-schedule")]
    return Proc("beat", cmd, env=env, log=log)


def flower_proc(port: int, env: dict[str, str], user: str, password: str, log: Path | None = None) -> Proc:
    cmd = [str(BIN / "celery"), "-A", "tasks", "flower", "--address=127.0.0.1", f"--port={port}",
           f"--basic-auth={user}:{password}"]
    return Proc("flower", cmd, env=env, log=log)


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)


# ---------------------------------------------------------------- up / down


def _load_state() -> dict:
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def _flower_password() -> str:
    path = RUN / "flower-password"
    if os.environ.get("EVENTLOG_FLOWER_PASSWORD"):
        return os.environ["EVENTLOG_FLOWER_PASSWORD"]
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


class ServiceUnavailable(RuntimeError):
    """A service the environment names explicitly does not answer."""


def _explicit(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def require_answer(name: str, url: str, what: str, wait: float | None = None) -> None:
    """Wait up to ``wait`` seconds for ``url`` to answer; ServiceUnavailable if it does not.

    An operator who sets the variable means that service: starting a private one
    instead would send the site's events somewhere nobody looks.
    """
    wait = EXPLICIT_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while not url_answers(url):
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(
                f"{name}={safe_url(url)} does not answer (waited {wait:.0f} s). It is set explicitly, so "
                f"`make up` does not start its own {what} instead: start that server, correct the URL, "
                f"or unset {name} to use the embedded default.")
        time.sleep(0.25)


def require_explicit_services() -> tuple[str | None, str | None]:
    """(broker, mongo) URLs set in the environment, each checked to answer; None where unset."""
    broker, mongo = _explicit("EVENTLOG_BROKER_URL"), _explicit("EVENTLOG_MONGO_URL")
    if broker:
        require_answer("EVENTLOG_BROKER_URL", broker, "Redis")
    if mongo:
        require_answer("EVENTLOG_MONGO_URL", mongo, "store (nx-27017)")
    return broker, mongo


def up() -> dict:
    """Start every part that does not answer yet; return the stack's description.

    EVENTLOG_BROKER_URL / EVENTLOG_MONGO_URL set: that service is used, and if it does
    not answer within EXPLICIT_WAIT seconds nothing starts (ServiceUnavailable). Unset:
    the local Redis on 6379 if it answers, else a private one; always a private nx-27017.
    """
    RUN.mkdir(parents=True, exist_ok=True)
    state = _load_state()
    started: dict[str, int] = dict(state.get("pids", {}))
    logs = VAR / "log"
    logs.mkdir(parents=True, exist_ok=True)

    explicit_broker, explicit_mongo = require_explicit_services()
    broker = explicit_broker or DEFAULT_BROKER
    if not explicit_broker and not url_answers(broker):
        port = state.get("redis_port") or free_port()
        proc = redis_proc(port, VAR / "redis", logs / "redis.log").start()
        wait_for_port("127.0.0.1", port, what="redis")
        broker = f"redis://127.0.0.1:{port}/0"
        started["redis"] = proc.pid
        state["redis_port"] = port

    mongo = explicit_mongo
    if not mongo:
        port = state.get("mongo_port") or free_port()
        if not port_answers("127.0.0.1", port):
            proc = nx_proc(port, VAR / "mongo", logs / "mongo.log").start()
            wait_for_port("127.0.0.1", port, what="nx-27017")
            started["mongo"] = proc.pid
        mongo = f"mongodb://127.0.0.1:{port}"
        state["mongo_port"] = port

    web_port = int(os.environ.get("EVENTLOG_WEB_PORT", "8000"))
    flower_port = int(os.environ.get("EVENTLOG_FLOWER_PORT", "5555"))
    env = {
        "EVENTLOG_BROKER_URL": broker,
        "EVENTLOG_MONGO_URL": mongo,
        "EVENTLOG_MONGO_DB": os.environ.get("EVENTLOG_MONGO_DB", "logs"),
        "EVENTLOG_SPOOL_DIR": os.environ.get("EVENTLOG_SPOOL_DIR", str(VAR / "spool")),
        "EVENTLOG_GEOIP_CITY_DB": os.environ.get("EVENTLOG_GEOIP_CITY_DB", geolite_city_db()),
        "EVENTLOG_VAR_DIR": str(VAR),
        # The demo's course catalogue, for the workers' tutorial rollups.
        "EVENTLOG_PROGRESS_CATALOGUE": "demo.catalogue.course_for",
        # The load generator, on this machine, is the demo's only proxy (X-Forwarded-For spreads
        # its visitors over countries); any other client's header is ignored.
        "EVENTLOG_TRUSTED_PROXIES": os.environ.get("EVENTLOG_TRUSTED_PROXIES", "127.0.0.1,::1"),
        "PYTHONPATH": str(ROOT),
    }
    if broker.startswith("redis"):
        # One cache for the web processes, so the beacon's budgets and the login throttle hold
        # across gunicorn's workers (demo/settings.py; its keys are prefixed, apart from Celery's).
        env["DEMO_CACHE_URL"] = os.environ.get("DEMO_CACHE_URL", broker)
    manage("migrate", "--noinput", env=env)
    manage("seed_demo", env=env)

    def want(name: str, make) -> None:  # noqa: ANN001
        pid = started.get(name)
        if pid and _pid_alive(pid):
            return
        started[name] = make().start().pid

    want("worker-enrich", lambda: worker_proc("enrich", "eventlog.enrich", env, 2, logs / "worker-enrich.log"))
    want("worker-store", lambda: worker_proc("store", "eventlog.store,eventlog.rollup", env, 2,
                                             logs / "worker-store.log"))
    want("beat", lambda: beat_proc(env, logs / "beat.log"))
    user = os.environ.get("EVENTLOG_FLOWER_USER", "admin")
    want("flower", lambda: flower_proc(flower_port, env, user, _flower_password(), logs / "flower.log"))
    want("web", lambda: web_proc(web_port, env, 3, logs / "web.log"))
    wait_for_port("127.0.0.1", web_port, 60, "demo site")
    wait_for_port("127.0.0.1", flower_port, 60, "flower")

    state.update(pids=started, env=env, web_port=web_port, flower_port=flower_port, flower_user=user)
    STATE.write_text(json.dumps(state, indent=2))
    return state


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def down() -> None:
    state = _load_state()
    for name, pid in reversed(list(state.get("pids", {}).items())):
        if _pid_alive(pid):
            stop_group(pid, signal.SIGTERM)
            print(f"stopped {name} (pid {pid})")
    deadline = time.monotonic() + 15
    for pid in state.get("pids", {}).values():
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            stop_group(pid, signal.SIGKILL)
    state["pids"] = {}
    if STATE.exists():
        STATE.write_text(json.dumps(state, indent=2))


def print_urls(state: dict) -> None:
    print(f"demo site:  http://127.0.0.1:{state['web_port']}/  (users learner1..learner20, admin; "
          "password demo-password)")
    print(f"dashboard:  http://127.0.0.1:{state['web_port']}/eventlog/dashboard/  (staff: admin / demo-password)")
    print(f"health:     http://127.0.0.1:{state['web_port']}/eventlog/health/")
    print(f"flower:     http://127.0.0.1:{state['flower_port']}/  (user {state['flower_user']}, "
          f"password in {RUN / 'flower-password'})")
    print(f"broker:     {state['env']['EVENTLOG_BROKER_URL']}")
    print(f"mongo:      {state['env']['EVENTLOG_MONGO_URL']} db {state['env']['EVENTLOG_MONGO_DB']}")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "up":
        try:
            print_urls(up())
        except ServiceUnavailable as exc:
            print(f"eventlog stack: {exc}", file=sys.stderr)
            return 1
    elif command == "down":
        down()
    elif command == "status":
        state = _load_state()
        for name, pid in state.get("pids", {}).items():
            print(f"{name:15} pid {pid:7} {'running' if _pid_alive(pid) else 'stopped'}")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
