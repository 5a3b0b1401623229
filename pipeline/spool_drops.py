"""What a bounded spool dropped: per-process counters in the spool directory, merged when read.

Each process counts the events its spool refused (EVENTLOG_SPOOL_MAX_BYTES reached, or the
disk full) in ``<owner>.dropped``: 20 digits, rewritten in place, so that once the file
exists saving it needs no new disk block (the disk may be full). A dead owner's count is
folded into the process that adopts its segments, so the sum over the directory (what
health/ shows) survives restarts. The warning goes to the log once a minute, not once per
event: when the spool is full, every request would otherwise log one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger("pipeline.spool")

SUFFIX = ".dropped"
WIDTH = 20
LOG_EVERY = 60.0  # seconds between two warnings of one process


def read_count(path: Path) -> int:
    try:
        return int(path.read_bytes().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def dropped_in(directory: str | os.PathLike[str]) -> int:
    """Events dropped by every owner of ``directory``, as last saved."""
    return sum(read_count(p) for p in Path(directory).glob(f"*{SUFFIX}"))


class DropCounter:
    """One process's count. ``count`` is called under the spool's lock; ``save`` by its shipper."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.path = directory / f"{owner}{SUFFIX}"
        self.total = 0  # this process's drops, plus those inherited from dead owners
        self._saved = 0
        self._fd: int | None = None
        self._unlogged = 0
        self._last_log = float("-inf")
        self._lock = threading.Lock()

    def count(self, why: str, used: int, bound: int) -> None:
        with self._lock:
            self.total += 1
            self._unlogged += 1
            now = time.monotonic()
            if now - self._last_log < LOG_EVERY:
                return
            unlogged, self._unlogged, self._last_log = self._unlogged, 0, now
        log.warning("eventlog: %d events dropped since the last report: %s (spool %s, about %d of %d bytes; "
                    "%d dropped by this process in all)", unlogged, why, self.path.parent, used, bound, self.total)

    def save(self) -> None:
        """Write the count if it changed; on failure (a full disk) it stays in memory for the next pass."""
        with self._lock:
            total = self.total
        if total == self._saved:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.pwrite(self._fd, str(total).zfill(WIDTH).encode(), 0)
            self._saved = total
        except OSError:
            pass

    def inherit(self, owner: str) -> None:
        """Add a dead owner's count to this one, then remove its file."""
        path = self.path.parent / f"{owner}{SUFFIX}"
        inherited = read_count(path)
        if inherited:
            with self._lock:
                self.total += inherited
            self.save()
        path.unlink(missing_ok=True)

    def close(self) -> None:
        self.save()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor without writing."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
