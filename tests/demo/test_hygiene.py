"""The demo site's own defences: no secret key in the source, no framing, throttled logins."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from demo.login import THROTTLED
from deploy.stack import ROOT

PASSWORD = "right-password-123"


def key_of(var_dir: Path, **env: str) -> str:
    """SECRET_KEY as a fresh process of the demo sees it."""
    clean = {k: v for k, v in os.environ.items() if k != "DEMO_SECRET_KEY"}
    code = "import demo.settings as s; print(s.SECRET_KEY)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**clean, "EVENTLOG_VAR_DIR": str(var_dir), "PYTHONPATH": str(ROOT), **env})
    return done.stdout.strip()


def test_the_secret_key_is_made_once_per_var_directory_and_kept_private(tmp_path: Path) -> None:
    first = key_of(tmp_path / "a")
    assert len(first) >= 50
    assert key_of(tmp_path / "a") == first  # kept: sessions survive a restart
    assert key_of(tmp_path / "b") != first  # not a constant of the source
    assert stat.S_IMODE((tmp_path / "a" / "secret-key").stat().st_mode) == 0o600
    assert key_of(tmp_path / "c", DEMO_SECRET_KEY="given-by-the-operator") == "given-by-the-operator"
    assert not (tmp_path / "c" / "secret-key").exists()


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k != "DEMO_SECRET_KEY"}
    env = {**clean, "EVENTLOG_VAR_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", "import demo.settings as s; print(s.SECRET_KEY)"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, text=True) for _ in range(6)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and "" not in keys


def test_pages_may_not_be_framed() -> None:
    answer = Client(HTTP_HOST="127.0.0.1").get("/accounts/login/")
    assert answer.status_code == 200
    assert answer["X-Frame-Options"] == "DENY"


@pytest.fixture
def learner() -> Iterator[str]:
    cache.clear()
    name = "throttle-learner"
    account, _ = get_user_model().objects.get_or_create(username=name)
    account.set_password(PASSWORD)
    account.save()
    yield name
    cache.clear()


def login(username: str, password: str, ip: str = "192.0.2.10"):  # noqa: ANN201
    client = Client(REMOTE_ADDR=ip, HTTP_HOST="127.0.0.1")
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_after_five_failures_the_login_is_refused_without_checking(learner: str) -> None:
    assert [login(learner, "guess").status_code for _ in range(5)] == [200] * 5  # the form, with its error
    refused = login(learner, PASSWORD)  # even the right password: nothing is checked any more
    assert refused.status_code == 429
    assert THROTTLED in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    assert login(learner, PASSWORD, ip="192.0.2.11").status_code == 302  # another address is not held up


def test_a_learner_who_mistypes_a_few_times_still_gets_in(learner: str) -> None:
    assert [login(learner, "typo").status_code for _ in range(4)] == [200] * 4
    assert login(learner, PASSWORD).status_code == 302


def test_the_user_name_counts_case_blind(learner: str) -> None:
    for variant in ("Throttle-Learner", "THROTTLE-LEARNER", "throttle-learner ", "tHrottle-learner", "x"):
        login(variant if variant != "x" else learner, "guess")
    assert login(learner, PASSWORD).status_code == 429
