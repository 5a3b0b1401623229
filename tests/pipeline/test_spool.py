"""pipeline.spool: the local append-only spool and its shipper.

The publish function is the shipper's real collaborator (in production it sends a
Celery task); here it is a plain function that appends the batches it is given to
a list, optionally failing like an unreachable broker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.shipper import Shipper
from pipeline.spool import Spool, spool_size

REPO = Path(__file__).resolve().parents[2]


class BrokerDown(ConnectionError):
    pass


class Publisher:
    """publish(events): records every batch; fails on the listed call numbers (1-based)."""

    def __init__(self, fail_on: set[int] | None = None, fail_after_taking: set[int] | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.calls = 0
        self.fail_on = fail_on or set()
        self.fail_after_taking = fail_after_taking or set()
        self.down = False

    def __call__(self, events: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.down or self.calls in self.fail_on:
            raise BrokerDown("broker unreachable")
        self.batches.append(list(events))
        if self.calls in self.fail_after_taking:
            raise BrokerDown("connection lost before the confirm")

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for batch in self.batches for e in batch]

    def numbers(self) -> list[int]:
        return [e["n"] for e in self.events]


def event(n: int) -> dict[str, Any]:
    return {"n": n, "event_id": f"{n:032x}", "path_info": f"/page/{n}/", "note": "ünïcödé ✓"}


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool")
    yield s
    try:
        s.close()
    except OSError:
        pass


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


# --- shipping in order, in batches --------------------------------------------------------


def test_run_once_ships_everything_in_order_in_batches(spool: Spool) -> None:
    publish = Publisher()
    shipper = Shipper(spool, publish, batch=4)
    for n in range(10):
        spool.append(event(n))
    assert shipper.run_once() == 10
    assert [len(b) for b in publish.batches] == [4, 4, 2]
    assert publish.events == [event(n) for n in range(10)]  # the JSON round trip keeps every field
    assert shipper.shipped == 10
    assert segments(spool.directory) == []
    assert files(spool.directory) == [f"{spool.owner}.lock"]


def test_run_once_with_nothing_to_ship(spool: Spool) -> None:
    publish = Publisher()
    shipper = Shipper(spool, publish, batch=4)
    assert shipper.run_once() == 0
    assert publish.calls == 0


def test_batch_size_one_and_exact_multiple(spool: Spool) -> None:
    publish = Publisher()
    for n in range(6):
        spool.append(event(n))
    Shipper(spool, publish, batch=3).run_once()
    assert [len(b) for b in publish.batches] == [3, 3]
    publish2 = Publisher()
    for n in range(3):
        spool.append(event(n))
    Shipper(spool, publish2, batch=1).run_once()
    assert publish2.batches == [[event(0)], [event(1)], [event(2)]]


def test_several_passes_keep_order(spool: Spool) -> None:
    publish = Publisher()
    shipper = Shipper(spool, publish, batch=3)
    n = 0
    for round_size in (5, 1, 7):
        for _ in range(round_size):
            spool.append(event(n))
            n += 1
        shipper.run_once()
    assert publish.numbers() == list(range(13))


def test_non_json_values_are_spooled_as_strings(spool: Spool) -> None:
    publish = Publisher()
    spool.append({"n": 0, "path": Path("/x"), "when": 1.5})
    Shipper(spool, publish).run_once()
    assert publish.events == [{"n": 0, "path": "/x", "when": 1.5}]


# --- broker down ------------------------------------------------------------------------


def test_publish_failure_loses_nothing(spool: Spool) -> None:
    publish = Publisher()
    shipper = Shipper(spool, publish, batch=4)
    for n in range(10):
        spool.append(event(n))
    publish.down = True
    with pytest.raises(BrokerDown):
        shipper.run_once()
    assert publish.events == []
    assert len(segments(spool.directory)) == 1  # the spool is kept
    assert spool_size(spool.directory)["segments"] == 1

    # more traffic arrives while the broker is down
    for n in range(10, 15):
        spool.append(event(n))
    with pytest.raises(BrokerDown):
        shipper.run_once()
    assert len(segments(spool.directory)) == 2

    publish.down = False
    assert shipper.run_once() == 15
    assert publish.numbers() == list(range(15))
    assert segments(spool.directory) == []


@pytest.mark.parametrize("fail_on_call", [1, 2, 3, 4])
def test_failure_midway_does_not_resend_published_batches(spool: Spool, fail_on_call: int) -> None:
    publish = Publisher(fail_on={fail_on_call})
    shipper = Shipper(spool, publish, batch=3)
    for n in range(10):  # batches: 0-2, 3-5, 6-8, 9
        spool.append(event(n))
    with pytest.raises(BrokerDown):
        shipper.run_once()
    published_before = 3 * (fail_on_call - 1)
    assert publish.numbers() == list(range(published_before))
    if published_before:
        # the offset of what the broker took is on disk next to the segment
        [segment] = segments(spool.directory)
        offset = int(Path(str(segment) + ".off").read_text())
        lines = segment.read_bytes().splitlines(keepends=True)
        assert offset == sum(len(line) for line in lines[:published_before])

    shipper.run_once()
    assert publish.numbers() == list(range(10))  # each event exactly once, in order
    assert files(spool.directory) == [f"{spool.owner}.lock"]


def test_failure_after_broker_took_batch_resends_only_that_batch(spool: Spool) -> None:
    """publish raising after the broker took a batch (lost confirm) re-sends that batch
    once: at-least-once, deduplicated downstream by event id. Earlier batches are not re-sent."""
    publish = Publisher(fail_after_taking={2})
    shipper = Shipper(spool, publish, batch=3)
    for n in range(7):
        spool.append(event(n))
    with pytest.raises(BrokerDown):
        shipper.run_once()
    shipper.run_once()
    assert publish.numbers() == [0, 1, 2, 3, 4, 5, 3, 4, 5, 6]
    assert sorted(set(publish.numbers())) == list(range(7))


def test_drain_retries_until_the_broker_answers(spool: Spool) -> None:
    publish = Publisher(fail_on={1, 2})
    shipper = Shipper(spool, publish, batch=100)
    for n in range(5):
        spool.append(event(n))
    assert shipper.drain(timeout=5) is True
    assert publish.numbers() == list(range(5))


def test_drain_gives_up_while_broker_stays_down(spool: Spool) -> None:
    publish = Publisher()
    publish.down = True
    shipper = Shipper(spool, publish)
    spool.append(event(0))
    assert shipper.drain(timeout=0.3) is False
    assert spool_size(spool.directory)["segments"] == 1


def test_background_thread_ships_and_survives_failures(spool: Spool) -> None:
    publish = Publisher(fail_on={1})
    shipper = Shipper(spool, publish, batch=10, interval_ms=10, max_backoff=0.05)
    shipper.start()
    try:
        for n in range(25):
            spool.append(event(n))
        deadline = time.monotonic() + 5
        while len(publish.events) < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        shipper.stop(drain_timeout=2)
    assert publish.numbers() == list(range(25))
    assert shipper.failures == 1  # the failed first publish, retried by the loop
    assert shipper._thread is not None and not shipper._thread.is_alive()


def test_stop_drains_what_is_left(spool: Spool) -> None:
    publish = Publisher()
    shipper = Shipper(spool, publish, interval_ms=60_000)
    shipper.start()
    time.sleep(0.05)  # the first pass ran with an empty spool; the next one is a minute away
    for n in range(5):
        spool.append(event(n))
    shipper.stop(drain_timeout=2)
    assert publish.numbers() == list(range(5))


# --- corrupt lines ----------------------------------------------------------------------


def test_corrupt_line_is_passed_on(spool: Spool) -> None:
    publish = Publisher()
    spool.append(event(0))
    spool.append(event(1))
    spool.seal()
    [segment] = segments(spool.directory)
    with open(segment, "ab") as fh:
        fh.write(b'{"n": 2, "event_id": "tor\n')
        fh.write(b"\xff\xfe not utf-8\n")
        fh.write(json.dumps(event(3)).encode() + b"\n")
    Shipper(spool, publish).run_once()
    got = publish.events
    assert len(got) == 5
    assert got[0] == event(0) and got[1] == event(1) and got[4] == event(3)
    assert got[2] == {"_spool_corrupt": '{"n": 2, "event_id": "tor\n'}
    assert got[3] == {"_spool_corrupt": "\ufffd\ufffd not utf-8\n"}
    assert segments(spool.directory) == []


def test_corrupt_line_text_is_capped(spool: Spool) -> None:
    publish = Publisher()
    spool.append(event(0))
    spool.seal()
    [segment] = segments(spool.directory)
    with open(segment, "ab") as fh:
        fh.write(b"{" + b"x" * 10_000 + b"\n")
    Shipper(spool, publish).run_once()
    assert len(publish.events[1]["_spool_corrupt"]) == 4096


# --- spool_size ------------------------------------------------------------------------


def test_spool_size(spool: Spool) -> None:
    empty = {"segments": 0, "bytes": 0, "oldest_age_seconds": None, "shipped_unchecked": 0, "dropped": 0}
    assert spool_size(spool.directory) == empty
    for n in range(3):
        spool.append(event(n))
    expected = sum(len(json.dumps(event(n), separators=(",", ":"), ensure_ascii=False).encode()) + 1
                   for n in range(3))
    size = spool_size(spool.directory)
    assert (size["segments"], size["bytes"]) == (1, expected)
    assert 0 <= size["oldest_age_seconds"] < 60
    spool.seal()
    spool.append(event(3))
    size = spool_size(spool.directory)
    assert size["segments"] == 2 and size["bytes"] > expected
    Shipper(spool, Publisher()).run_once()
    assert spool_size(spool.directory) == empty


def test_spool_age_is_that_of_the_oldest_segment(spool: Spool) -> None:
    spool.append(event(0))
    spool.seal()
    spool.append(event(1))
    oldest = min(spool.directory.glob("*.seg"))
    an_hour_ago = time.time() - 3600
    os.utime(oldest, (an_hour_ago, an_hour_ago))
    assert 3599 < spool_size(spool.directory)["oldest_age_seconds"] < 3700


def test_spool_size_of_missing_directory(tmp_path: Path) -> None:
    assert spool_size(tmp_path / "nothing-here") == {"segments": 0, "bytes": 0, "oldest_age_seconds": None,
                                                     "shipped_unchecked": 0, "dropped": 0}


# --- processes: dead owners are adopted, live ones are not ---------------------------------

KILLED_WRITER = """
import os, signal, sys
from pipeline.spool import Spool
spool = Spool(sys.argv[1])
n = int(sys.argv[2])
for i in range(n):
    if i == n // 2:
        spool.seal()  # leave a sealed segment and an active one behind
    spool.append({"n": i, "event_id": "%032x" % i, "pid": os.getpid()})
os.kill(os.getpid(), signal.SIGKILL)
"""

LIVE_WRITER = """
import sys, time
from pipeline.spool import Spool
spool = Spool(sys.argv[1])
for i in range(int(sys.argv[2])):
    spool.append({"n": i, "event_id": "%032x" % i})
spool.seal()
print("ready", spool.owner, flush=True)
time.sleep(60)
"""


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def run_killed_writer(directory: Path, n: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(directory), str(n)],
        cwd=REPO, env=child_env(), capture_output=True, timeout=30,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def test_spool_of_sigkilled_process_is_adopted_exactly_once(spool: Spool) -> None:
    n = 1000
    run_killed_writer(spool.directory, n)
    leftovers = files(spool.directory)
    child_locks = [f for f in leftovers if f.endswith(".lock") and f != f"{spool.owner}.lock"]
    assert len(child_locks) == 1
    assert len(segments(spool.directory)) == 2

    publish = Publisher()
    shipper = Shipper(spool, publish, batch=64)
    assert shipper.run_once() == n
    assert publish.numbers() == list(range(n))  # all, exactly once, in order
    assert max(len(b) for b in publish.batches) <= 64
    assert files(spool.directory) == [f"{spool.owner}.lock"]  # lock, segments and offsets removed

    assert shipper.run_once() == 0
    assert shipper.adopt_orphans() == 0
    assert len(publish.events) == n


def test_adoption_interrupted_by_broker_failure_resumes_without_loss(spool: Spool) -> None:
    n = 200
    run_killed_writer(spool.directory, n)
    publish = Publisher(fail_on={3})
    shipper = Shipper(spool, publish, batch=25)
    with pytest.raises(BrokerDown):
        shipper.adopt_orphans()
    assert publish.numbers() == list(range(50))
    assert len([f for f in files(spool.directory) if f.endswith(".lock")]) == 2  # not released yet
    assert shipper.adopt_orphans() == n - 50
    assert publish.numbers() == list(range(n))
    assert files(spool.directory) == [f"{spool.owner}.lock"]


def test_torn_last_line_of_dead_process_is_passed_on(spool: Spool) -> None:
    run_killed_writer(spool.directory, 10)
    active = segments(spool.directory)[-1]
    with open(active, "ab") as fh:
        fh.write(b'{"n": 10, "event_')  # the write the kill interrupted
    publish = Publisher()
    Shipper(spool, publish).run_once()
    got = publish.events
    assert [e["n"] for e in got[:10]] == list(range(10))
    assert got[10] == {"_spool_corrupt": '{"n": 10, "event_'}


def test_two_dead_processes_are_both_adopted(spool: Spool) -> None:
    run_killed_writer(spool.directory, 30)
    run_killed_writer(spool.directory, 40)
    publish = Publisher()
    assert Shipper(spool, publish, batch=7).run_once() == 70
    pids = {e["pid"] for e in publish.events}
    assert len(pids) == 2
    for pid in pids:
        assert [e["n"] for e in publish.events if e["pid"] == pid] in (list(range(30)), list(range(40)))
    assert files(spool.directory) == [f"{spool.owner}.lock"]


def test_live_owner_is_not_adopted_until_it_dies(spool: Spool) -> None:
    n = 50
    child = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(spool.directory), str(n)],
        cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("ready"), child.stderr.read() if child.poll() is not None else line
        child_owner = line.split()[1]
        publish = Publisher()
        shipper = Shipper(spool, publish)
        assert shipper.adopt_orphans() == 0
        assert shipper.run_once() == 0
        assert publish.events == []
        assert (spool.directory / f"{child_owner}.lock").exists()
        assert len(list(spool.directory.glob(f"{child_owner}.*.seg"))) == 1
    finally:
        child.kill()  # SIGKILL
        child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert shipper.adopt_orphans() == n
    assert publish.numbers() == list(range(n))
    assert files(spool.directory) == [f"{spool.owner}.lock"]


def test_live_spool_in_same_process_is_not_adopted(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    writer = Spool(directory)
    adopter_spool = Spool(directory)
    try:
        for n in range(5):
            writer.append(event(n))
        writer.seal()
        publish = Publisher()
        adopter = Shipper(adopter_spool, publish)
        assert adopter.run_once() == 0  # flock is per open file: the writer still holds it
        writer.close()  # lock released: the rest is anybody's to ship
        assert adopter.run_once() == 5
        assert publish.numbers() == list(range(5))
    finally:
        adopter_spool.close()


def test_owner_ships_its_own_segments_only(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    a, b = Spool(directory), Spool(directory)
    try:
        a.append(event(1))
        b.append(event(2))
        pub_a, pub_b = Publisher(), Publisher()
        Shipper(a, pub_a).run_once()
        Shipper(b, pub_b).run_once()
        assert pub_a.numbers() == [1]
        assert pub_b.numbers() == [2]
    finally:
        a.close()
        b.close()


def test_raw_mode_publishes_the_lines_as_written(spool: Spool) -> None:
    for n in range(5):
        spool.append(event(n))
    shipped: list[list[Any]] = []
    Shipper(spool, shipped.append, batch=2, raw=True).run_once()
    lines = [line for batch in shipped for line in batch]
    assert [len(b) for b in shipped] == [2, 2, 1]
    assert all(isinstance(line, str) and not line.endswith("\n") for line in lines)
    assert [json.loads(line) for line in lines] == [event(n) for n in range(5)]


# --- the end-to-end check of shipped segments -----------------------------------------------


class Verifier:
    """verify(lines, shipped_at): says which lines are "missing", or None (cannot tell yet)."""

    def __init__(self, missing: set[int] | None = None, ready: bool = True) -> None:
        self.missing, self.ready, self.calls = missing or set(), ready, 0

    def __call__(self, lines: list[str], shipped_at: float) -> list[str] | None:
        self.calls += 1
        if not self.ready:
            return None
        return [line for line in lines if json.loads(line)["n"] in self.missing]


def ship_and_age(spool: Spool, verifier: Verifier, n: int = 4) -> Shipper:
    shipper = Shipper(spool, Publisher(), raw=True, verify=verifier, verify_after=60)
    for i in range(n):
        spool.append(event(i))
    shipper.run_once()
    for shipped in spool.directory.glob("*.seg.shipped"):
        an_hour_ago = time.time() - 3600
        os.utime(shipped, (an_hour_ago, an_hour_ago))
    return shipper


def test_a_shipped_segment_is_kept_until_checked(spool: Spool) -> None:
    verifier = Verifier()
    shipper = Shipper(spool, Publisher(), raw=True, verify=verifier, verify_after=60)
    spool.append(event(0))
    shipper.run_once()
    assert spool_size(spool.directory)["shipped_unchecked"] == 1
    assert shipper.verify_shipped() == 0 and verifier.calls == 0  # too young to judge
    assert spool_size(spool.directory)["shipped_unchecked"] == 1


def test_events_that_never_arrived_are_spooled_and_shipped_again(spool: Spool) -> None:
    verifier = Verifier(missing={1, 3})
    shipper = ship_and_age(spool, verifier)
    assert shipper.verify_shipped() == 2
    assert spool_size(spool.directory)["shipped_unchecked"] == 0
    publisher = Publisher()
    shipper.publish = publisher
    shipper.run_once()
    assert [json.loads(line)["n"] for batch in publisher.batches for line in batch] == [1, 3]


def test_nothing_is_dropped_while_the_store_cannot_tell(spool: Spool) -> None:
    verifier = Verifier(missing={0}, ready=False)
    shipper = ship_and_age(spool, verifier)
    assert shipper.verify_shipped() == 0
    assert spool_size(spool.directory)["shipped_unchecked"] == 1
    verifier.ready = True
    assert shipper.verify_shipped() == 1
    assert spool_size(spool.directory)["shipped_unchecked"] == 0


def test_all_found_deletes_the_segment(spool: Spool) -> None:
    shipper = ship_and_age(spool, Verifier())
    assert shipper.verify_shipped() == 0
    assert list(spool.directory.glob("*.seg*")) == []
