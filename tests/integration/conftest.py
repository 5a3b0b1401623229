"""Fixtures of the integration tests: Debian's Chromium driven by Playwright, and
private servers a test may kill (nx-27017, redis-server on ports of their own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from deploy.stack import free_port, nx_proc, redis_proc
from tests.helpers.servers import Restartable

CHROMIUM = "/usr/bin/chromium"  # Debian's package; tests never download a browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def private_mongo(tmp_path: Path) -> Iterator[Restartable]:
    """nx-27017 of the test's own (a real MongoDB cannot be SIGKILLed by a test)."""
    port, data = free_port(), tmp_path / "nx"
    server = Restartable(lambda: nx_proc(port, data, data / "stdout.log"), port, "nx-27017")
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Restartable]:
    """redis-server of the test's own, with deploy/redis.conf (AOF) and its data in tmp_path."""
    port, data = free_port(), tmp_path / "redis"
    server = Restartable(lambda: redis_proc(port, data, tmp_path / "redis.log"), port, "redis-server")
    yield server
    server.stop()
