"""Django in-process for the hook's own tests: the demo settings, a private spool
and a broker address nobody listens on, so every handed-off event stays in the
spool where the test can read it."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="eventlog-hook-tests-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="demo.settings",
    EVENTLOG_VAR_DIR=str(_TMP / "var"),
    EVENTLOG_SPOOL_DIR=str(_TMP / "spool"),
    EVENTLOG_BROKER_URL="redis://127.0.0.1:9/0",  # discard port: publishing fails, events stay spooled
    EVENTLOG_SHIP_INTERVAL="60000",
    # The beacon's budgets count per client IP across the whole session (one cache): tests that
    # test them set their own; the others must not run into a budget another test spent.
    EVENTLOG_BEACON_RATE="1000000/m",
    EVENTLOG_BEACON_BYTES_RATE="1000000000/m",
)
(_TMP / "var").mkdir(exist_ok=True)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

SPOOL = _TMP / "spool"

# Expected here by design, thousands of times (hostile payloads answered 400, a shipper failing
# against the discard port): at WARNING they would bury a real failure's output. Errors still show.
for _noisy in ("django.request", "pipeline.spool"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)


def spooled() -> list[dict]:
    """Every event in the spool, in order."""
    events = []
    for segment in sorted(SPOOL.glob("*.seg")):
        events += [json.loads(line) for line in segment.read_bytes().splitlines()]
    return events


@pytest.fixture
def spool_events():
    """Returns a function giving the events handed off since the test began."""
    before = len(spooled())
    return lambda: spooled()[before:]


@pytest.fixture(scope="session", autouse=True)
def _stop_the_shipper():
    """The shipper keeps failing against the discard port; stop it before the
    interpreter closes the log streams it writes its warnings to."""
    yield
    from django_hook import handoff

    shipper = handoff.shipper()
    if shipper is not None:
        shipper.stop(drain_timeout=0)
