"""`make up` with EVENTLOG_BROKER_URL / EVENTLOG_MONGO_URL set explicitly: that service or an error,
never a private one started in its place. Unset: the embedded defaults."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from deploy import stack
from deploy.stack import PYTHON, ROOT, free_port


def _run_up(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("EVENTLOG_BROKER_URL", "EVENTLOG_MONGO_URL")}
    return subprocess.run([PYTHON, "-m", "deploy.stack", "up"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**clean, "EVENTLOG_VAR_DIR": str(tmp_path / "var"), **env})


def test_an_explicit_broker_that_does_not_answer_fails_up_and_starts_nothing(tmp_path: Path) -> None:
    dead = free_port()
    started = time.monotonic()
    answer = _run_up(tmp_path, EVENTLOG_BROKER_URL=f"redis://ops:s3cret@127.0.0.1:{dead}/0")
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert f"EVENTLOG_BROKER_URL=redis://ops:***@127.0.0.1:{dead}/0 does not answer" in answer.stderr
    assert "s3cret" not in answer.stdout + answer.stderr
    assert time.monotonic() - started >= stack.EXPLICIT_WAIT  # it waited before giving up
    # Nothing was started: no private Redis, no store, no pids recorded.
    state = tmp_path / "var" / "run" / "stack.json"
    assert not (tmp_path / "var" / "redis").exists() and not (tmp_path / "var" / "mongo").exists()
    assert not state.exists() or json.loads(state.read_text()).get("pids", {}) == {}


def test_an_explicit_store_that_does_not_answer_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTLOG_BROKER_URL", raising=False)
    monkeypatch.setenv("EVENTLOG_MONGO_URL", f"mongodb://127.0.0.1:{free_port()}")
    monkeypatch.setattr(stack, "EXPLICIT_WAIT", 0.5)
    with pytest.raises(stack.ServiceUnavailable, match="EVENTLOG_MONGO_URL=mongodb://127.0.0.1:.* does not answer"):
        stack.require_explicit_services()


def test_an_explicit_service_that_comes_up_within_the_wait_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    url = f"mongodb://127.0.0.1:{port}"
    monkeypatch.setenv("EVENTLOG_MONGO_URL", url)
    monkeypatch.delenv("EVENTLOG_BROKER_URL", raising=False)
    listener = socket.socket()

    def listen_later() -> None:
        time.sleep(1.0)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()

    thread = threading.Thread(target=listen_later)
    thread.start()
    try:
        assert stack.require_explicit_services() == (None, url)
    finally:
        thread.join()
        listener.close()


def test_unset_or_empty_means_the_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTLOG_BROKER_URL", raising=False)
    monkeypatch.setenv("EVENTLOG_MONGO_URL", "")
    monkeypatch.setattr(stack, "EXPLICIT_WAIT", 0.0)
    assert stack.require_explicit_services() == (None, None)
