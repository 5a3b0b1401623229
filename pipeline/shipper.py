"""The shipper: publishes what web processes spooled (:mod:`pipeline.spool`) to the broker.

A daemon thread per web process seals the active segment, publishes sealed segments in
micro-batches, records the offset after each publish and deletes a segment once it is fully
shipped (or, with a verifier, keeps it as ``.seg.shipped`` until its events are found in the
store: pipeline.reconcile). A crash between publish and offset write re-ships a batch; the
event ids make that harmless downstream. It also adopts the segments of dead processes: the
flock on ``<owner>.lock`` is released by the kernel when its process dies.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.spool import OFF, SEG, SHIPPED, Spool, segment_key

# The spool's logger: operators filter one name for the hand-off and its shipping.
log = logging.getLogger("pipeline.spool")

Publish = Callable[[list[Any]], None]
Verify = Callable[[list[str], float], list[str] | None]


def _read_offset(segment: Path) -> int:
    try:
        return int((segment.parent / (segment.name + OFF)).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_offset(segment: Path, offset: int) -> None:
    tmp = segment.parent / (segment.name + OFF + ".tmp")
    tmp.write_text(str(offset))
    os.replace(tmp, segment.parent / (segment.name + OFF))


def _batches(
    segment: Path, start: int, size: int, raw: bool = False
) -> Iterator[tuple[list[Any], int]]:
    """(events, end offset) pairs from ``start``.

    With ``raw`` the events are the spool's JSON lines as text, undecoded (the
    worker parses them; the web process is spared the work). Otherwise they are
    decoded, and a torn or corrupt line is passed on as {"_spool_corrupt": text}
    so the worker dead-letters it visibly.
    """
    with open(segment, "rb") as fh:
        fh.seek(start)
        batch: list[Any] = []
        offset = start
        for line in fh:
            offset += len(line)
            if raw:
                batch.append(line.decode("utf-8", "replace").rstrip("\n"))
            else:
                try:
                    batch.append(json.loads(line))
                except ValueError:
                    batch.append({"_spool_corrupt": line.decode("utf-8", "replace")[:4096]})
            if len(batch) >= size:
                yield batch, offset
                batch = []
        if batch:
            yield batch, offset


class Shipper:
    """Publishes spooled events in micro-batches; adopts the spools of dead processes."""

    def __init__(
        self,
        spool: Spool,
        publish: Publish,
        batch: int = 500,
        interval_ms: int = 200,
        max_backoff: float = 5.0,
        raw: bool = False,
        verify: Verify | None = None,
        verify_after: float = 360.0,
        verify_every: float = 10.0,
    ) -> None:
        """``verify(lines, shipped_at)``: the lines whose events are not in the store, or None
        when it cannot tell yet. With it, a shipped segment is kept (``.seg.shipped``) and
        checked once it is ``verify_after`` seconds old; what is missing is spooled again
        (see pipeline.reconcile). Without it a segment is deleted once published."""
        self.verify = verify
        self.verify_after = verify_after
        self.verify_every = verify_every
        self._verifier: threading.Thread | None = None
        self.respooled = 0
        self.spool = spool
        self.raw = raw
        self.publish = publish
        self.batch = batch
        self.interval = interval_ms / 1000.0
        self.max_backoff = max_backoff
        self.shipped = 0
        self.failures = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._ship_lock = threading.Lock()

    def ship_segment(self, segment: Path) -> int:
        """Publish what is left of one sealed segment, then delete it."""
        sent = 0
        for events, end in _batches(segment, _read_offset(segment), self.batch, self.raw):
            self.publish(events)
            try:
                _write_offset(segment, end)
            except OSError:
                # A full disk: the offset only spares a re-ship after a crash (harmless, by id).
                # Going on empties the spool, and so the disk; stopping here would re-publish
                # this batch at every pass and never free a byte.
                pass
            sent += len(events)
        if self.verify is not None:
            shipped = segment.parent / (segment.name + SHIPPED)
            os.replace(segment, shipped)
            os.utime(shipped)  # its age counts from now, the time it was shipped
        else:
            segment.unlink(missing_ok=True)
        (segment.parent / (segment.name + OFF)).unlink(missing_ok=True)
        return sent

    def verify_shipped(self) -> int:
        """Check the shipped segments old enough (any owner's); spool again what never arrived.

        Returns the events spooled again. Segments are taken oldest first under an flock,
        so two live shippers never check the same one; a segment the verifier cannot judge
        yet (the store is behind or away) stops the pass.
        """
        if self.verify is None:
            return 0
        respooled = 0
        now = time.time()
        shipped = []
        for path in self.spool.directory.glob(f"*{SEG}{SHIPPED}"):
            try:
                shipped.append((path.stat().st_mtime, path))
            except FileNotFoundError:
                continue
        for shipped_at, path in sorted(shipped):
            if now - shipped_at < self.verify_after:
                break
            checked = self._verify_segment(path, shipped_at)
            if checked is None:
                break
            respooled += checked
        if respooled:
            log.warning("eventlog: %d shipped events never reached the store (a message lost in "
                        "transit); spooled again", respooled)
        self.respooled += respooled
        return respooled

    def _verify_segment(self, path: Path, shipped_at: float) -> int | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another shipper is checking it
            if not path.exists():
                return 0  # checked and deleted while we waited for the lock
            with os.fdopen(os.dup(fd), "rb") as fh:
                lines = [raw.decode("utf-8", "replace").rstrip("\n") for raw in fh if raw.strip()]
            missing = self.verify(lines, shipped_at)
            if missing is None:
                return None
            for line in missing:
                self.spool.append_line(line)
            path.unlink(missing_ok=True)
            return len(missing)
        finally:
            os.close(fd)

    def _orphan_locks(self) -> list[Path]:
        own = f"{self.spool.owner}.lock"
        return [p for p in self.spool.directory.glob("*.lock") if p.name != own]

    def adopt_orphans(self) -> int:
        """Ship every segment whose writer process is gone."""
        sent = 0
        for lock_path in self._orphan_locks():
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # its owner is alive
                continue
            try:
                owner = lock_path.name[: -len(".lock")]
                segments = sorted(self.spool.directory.glob(f"{owner}.*{SEG}"), key=segment_key)
                for segment in segments:
                    sent += self.ship_segment(segment)
                self.spool.drops.inherit(owner)  # its drops stay counted once it is gone
                lock_path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        if sent:
            log.info("eventlog: adopted and shipped %d events left by dead processes", sent)
        return sent

    def run_once(self) -> int:
        """One pass: seal, ship own segments in order, adopt orphans. Raises if publish fails."""
        with self._ship_lock:
            self.spool.refresh_usage()  # first: a broker that is away makes the rest raise
            self.spool.seal()
            sent = 0
            for segment in self.spool.sealed_segments():
                sent += self.ship_segment(segment)
            sent += self.adopt_orphans()
            self.shipped += sent
            return sent

    def _verify_loop(self) -> None:
        # A thread of its own: a store that is away must not hold up shipping.
        while not self._stop.wait(self.verify_every):
            try:
                self.verify_shipped()
            except Exception as exc:  # noqa: BLE001 - the store away: check again later
                log.warning("eventlog: checking shipped events failed (%s); will retry", exc)

    def drain(self, timeout: float = 10.0) -> bool:
        """Ship everything now (used at shutdown and by tests). True if the spool is empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.run_once()
                if not self.spool.sealed_segments():
                    return True
            except Exception:  # noqa: BLE001 - broker down: keep the spool, retry
                time.sleep(0.2)
        return False

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            try:
                self.run_once()
                backoff = self.interval
            except Exception as exc:  # noqa: BLE001 - never let the thread die
                self.failures += 1
                backoff = min(max(backoff * 2, 0.5), self.max_backoff)
                log.warning("eventlog: shipping failed (%s); events stay spooled, retry in %.1fs", exc, backoff)
            self._wake.wait(backoff)
            self._wake.clear()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="eventlog-shipper", daemon=True)
            self._thread.start()
        if self.verify is not None and (self._verifier is None or not self._verifier.is_alive()):
            self._verifier = threading.Thread(target=self._verify_loop, name="eventlog-verify", daemon=True)
            self._verifier.start()

    def stop(self, drain_timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=drain_timeout + self.max_backoff)
        self.drain(drain_timeout)
