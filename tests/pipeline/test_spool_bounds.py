"""pipeline.spool's bounds: EVENTLOG_SPOOL_MAX_BYTES, drop counting, short writes, full disks.

Short writes come from the kernel, not from a mock: RLIMIT_FSIZE in a child process (a write
that crosses the limit is cut short, the next one fails with EFBIG) and a 64 KiB tmpfs that
really fills up (ENOSPC; mounting needs root, which this machine's tests run as).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.shipper import Shipper
from pipeline.spool import Spool, spool_size

REPO = Path(__file__).resolve().parents[2]


class Publisher:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, events: list[Any]) -> None:
        self.events.extend(events)


def event(n: int, pad: int = 40) -> dict[str, Any]:
    return {"n": n, "event_id": f"{n:032x}", "path_info": f"/page/{n}/", "pad": "x" * pad}


def line_bytes(n: int, pad: int = 40) -> int:
    return len(json.dumps(event(n, pad), separators=(",", ":")).encode()) + 1


def whole_lines(directory: Path) -> list[bytes]:
    """Every segment's content, checking that it ends with a whole line."""
    lines = []
    for segment in sorted(directory.glob("*.seg")):
        data = segment.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{segment.name} ends with a torn line"
        lines += data.splitlines()
    return lines


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def test_a_full_spool_drops_the_newest_counts_them_and_warns_once(spool_dir: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    size = line_bytes(0)
    spool = Spool(spool_dir, max_bytes=10 * size + size // 2, measure_every=0)
    with caplog.at_level(logging.WARNING, logger="pipeline.spool"):
        accepted = [spool.append(event(n)) for n in range(100)]  # never raises
    # Drop newest: the first ten are kept, everything after the first refusal is refused.
    assert accepted == [True] * 10 + [False] * 90
    assert sum(p.stat().st_size for p in spool_dir.glob("*.seg")) <= spool.max_bytes
    assert spool.dropped == 90
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1, "one warning per interval, not one per event"
    publish = Publisher()
    shipper = Shipper(spool, publish)
    shipper.run_once()  # saves the counter; ships what was kept, in order
    assert [e["n"] for e in publish.events] == list(range(10))
    assert spool_size(spool_dir)["dropped"] == 90
    shipper.run_once()  # measures again: the shipped segment is gone, there is room
    assert spool.append(event(100)) is True
    spool.close()


def test_without_a_bound_nothing_is_dropped(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=0)
    assert all(spool.append(event(n)) for n in range(200))
    assert spool.dropped == 0
    spool.close()


def test_other_processes_segments_count_towards_the_bound(spool_dir: Path) -> None:
    size = line_bytes(0)
    other = Spool(spool_dir)
    for n in range(8):
        other.append(event(n))
    mine = Spool(spool_dir, max_bytes=10 * size, measure_every=0)  # measures at start
    assert [mine.append(event(n)) for n in range(4)] == [True, True, False, False]
    other.close()
    mine.close()


DROPPING_WRITER = """
import json, os, signal, sys
sys.path.insert(0, {repo!r})
from pipeline.spool import Spool
spool = Spool({directory!r}, max_bytes=300)
results = [spool.append({{"n": n, "pad": "x" * 40}}) for n in range(20)]
spool.drops.save()
print(json.dumps(results.count(False)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_drops_of_a_dead_process_stay_counted_after_adoption(spool_dir: Path) -> None:
    spool_dir.mkdir()
    proc = subprocess.run([sys.executable, "-c", DROPPING_WRITER.format(repo=str(REPO), directory=str(spool_dir))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    dropped = json.loads(proc.stdout)
    assert dropped > 0
    assert spool_size(spool_dir)["dropped"] == dropped
    spool = Spool(spool_dir)
    Shipper(spool, Publisher()).adopt_orphans()
    assert spool_size(spool_dir)["dropped"] == dropped  # merged into the adopter's counter, not lost
    assert [p.name for p in spool_dir.glob("*.dropped")] == [f"{spool.owner}.dropped"]
    spool.close()


FSIZE_WRITER = """
import json, resource, sys
sys.path.insert(0, {repo!r})
from pipeline.spool import Spool
spool = Spool({directory!r})
_soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # a write crossing 1000 bytes is cut short
results = [spool.append({{"n": n, "pad": "x" * 40}}) for n in range(30)]
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
results += [spool.append({{"n": n, "pad": "x" * 40}}) for n in range(30, 33)]
spool.close()
print(json.dumps(results))
"""


def test_a_short_write_is_cut_back_to_the_last_whole_line(spool_dir: Path) -> None:
    spool_dir.mkdir()
    proc = subprocess.run([sys.executable, "-c", FSIZE_WRITER.format(repo=str(REPO), directory=str(spool_dir))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr  # the hook's append never raised
    results = json.loads(proc.stdout)
    kept = [n for n, ok in enumerate(results) if ok]
    assert results[:30].count(False) > 0 and results[30:] == [True, True, True]
    lines = whole_lines(spool_dir)
    # The events after the limit was lifted follow the last whole line, not a torn fragment.
    assert [json.loads(line)["n"] for line in lines] == kept
    spool = Spool(spool_dir)
    publish = Publisher()
    Shipper(spool, publish).run_once()
    assert [e["n"] for e in publish.events] == kept
    assert not any("_spool_corrupt" in e for e in publish.events)
    spool.close()


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_drops_events_without_raising_and_keeps_whole_lines(tiny_filesystem: Path) -> None:
    directory = tiny_filesystem / "spool"
    spool = Spool(directory, max_bytes=0, measure_every=0)  # the disk, not the bound, runs out
    results = [spool.append(event(n, pad=900)) for n in range(120)]  # ~110 KB into 64 KiB
    kept = [n for n, ok in enumerate(results) if ok]
    assert 0 < len(kept) < 120 and spool.dropped == 120 - len(kept)
    assert [json.loads(line)["n"] for line in whole_lines(directory)] == kept
    publish = Publisher()
    shipper = Shipper(spool, publish)
    shipper.run_once()
    assert [e["n"] for e in publish.events] == kept
    shipper.run_once()  # the segments are gone: now the counter can be written
    assert spool_size(directory)["dropped"] == 120 - len(kept)
    assert spool.append(event(200)) is True
    spool.close()


def test_respooling_a_shipped_line_is_not_bounded(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=10, measure_every=0)
    assert spool.append(event(0)) is False
    spool.append_line(json.dumps(event(1)))  # the reconciler's re-spool replaces a shipped segment
    assert [json.loads(line)["n"] for line in whole_lines(spool_dir)] == [1]
    spool.close()
