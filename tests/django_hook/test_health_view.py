"""GET health/: a status word for anyone; the figures for staff and the monitor's token;
a per-process cache and one shared broker connection, so an outage is not a pile-up."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from tasks.broker_probe import probe
from tasks.health_cache import _cache

URL = "/eventlog/health/"
TOKEN = "s3cret-monitor-token"
DETAILS = {"broker", "store", "queues", "stages", "spool", "oldest_waiting_seconds", "max_age_seconds"}


@pytest.fixture(autouse=True)
def _real_services(mongo, redis_url) -> Iterator[None]:  # noqa: ANN001
    """The session's MongoDB and Redis, a token, and an empty cache before each test."""
    with override_settings(EVENTLOG_MONGO_URL=mongo.url, EVENTLOG_MONGO_DB=mongo.db, EVENTLOG_BROKER_URL=redis_url,
                           EVENTLOG_HEALTH_TOKEN=TOKEN, EVENTLOG_HEALTH_CACHE=3600):
        _cache.clear()
        yield
        _cache.clear()


def get(client: Client | None = None, **headers: str):  # noqa: ANN201
    return (client or Client(HTTP_HOST="127.0.0.1")).get(URL, headers=headers)


def staff_client(staff: bool = True) -> Client:
    account, _ = get_user_model().objects.get_or_create(username=f"health-{staff}", defaults={"is_staff": staff})
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(account)
    return client


def test_anonymous_visitors_get_the_status_word_and_no_numbers() -> None:
    answer = get()
    assert answer.status_code in (200, 503)
    assert list(answer.json()) == ["status"]
    assert isinstance(answer.json()["status"], str)
    assert answer["Cache-Control"] == "no-store"


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", f"bearer  {TOKEN} "])
def test_the_token_shows_the_figures(authorization: str) -> None:
    body = get(Authorization=authorization).json()
    assert DETAILS <= set(body), body
    assert body["broker"] is True and body["store"] is True, body
    assert {"events", "dead_letters", "last_lag_seconds"} <= set(body)


def test_staff_see_the_figures_and_other_users_do_not() -> None:
    assert DETAILS <= set(get(staff_client()).json())
    assert list(get(staff_client(staff=False)).json()) == ["status"]


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}",
                                           TOKEN, "Bearer ", ""])
def test_a_wrong_token_is_anonymous(authorization: str) -> None:
    assert list(get(Authorization=authorization).json()) == ["status"]


@override_settings(EVENTLOG_HEALTH_TOKEN="")
def test_without_a_configured_token_no_bearer_gets_in() -> None:
    assert list(get(Authorization="Bearer ").json()) == ["status"]
    assert list(get(Authorization="Bearer x").json()) == ["status"]


def test_answers_come_from_the_cache_and_one_broker_connection() -> None:
    opened, computed = probe.opened, _cache.computed
    for _ in range(10):
        get(Authorization=f"Bearer {TOKEN}")
        get()
    assert _cache.computed == computed + 1
    assert probe.opened <= opened + 1  # the first check may open it; every later one reuses it


class Blackhole:
    """A 'broker' that accepts connections and never answers (a hung or firewalled host: the
    case where each check waits out its timeout), counting the connections made to it."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


def test_during_a_broker_outage_a_burst_of_probes_costs_one_check() -> None:
    hole = Blackhole()
    try:
        with override_settings(EVENTLOG_BROKER_URL=f"redis://127.0.0.1:{hole.port}/0"):
            computed = _cache.computed
            answers: list = []
            threads = [threading.Thread(target=lambda: answers.append(get())) for _ in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert [(a.status_code, a.json()) for a in answers] == [(503, {"status": "broker unreachable"})] * 16
            # One check for the burst, one broker connection for the check; before, every request
            # opened its own (and against a broker that never answers, waited without end).
            assert _cache.computed == computed + 1
            assert len(hole.accepted) == 1
    finally:
        hole.close()
