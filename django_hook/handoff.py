"""The per-process spool and shipper behind the hook.

Started lazily on the first event in each process and again in each child after
a fork (gunicorn prefork), since threads and file locks do not survive a fork.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from pipeline import reconcile
from pipeline.shipper import Shipper
from pipeline.spool import Spool
from pipeline.store import process_client

log = logging.getLogger(__name__)

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "spool": None, "shipper": None}


def _publish(events: list[Any]) -> None:
    # Imported here: web processes need Celery only in the shipper thread.
    from tasks.publish import publish_batch

    publish_batch(events)


# Events made this long after a segment was shipped must be stored before its check says
# "lost": the workers between hand-off and store hold messages for up to a few seconds.
PASSED_MARGIN = timedelta(seconds=5)


def _verify(lines: list[str], shipped_at: float) -> list[str] | None:
    """The shipped lines whose events are not in MongoDB; None until the pipeline has moved past them."""
    from django_hook.conf import eventlog_settings

    s = eventlog_settings()
    db = process_client(s.mongo_url)[s.mongo_db]
    try:
        if not reconcile.pipeline_has_passed(db, datetime.fromtimestamp(shipped_at, UTC) + PASSED_MARGIN):
            return None
        return reconcile.missing_lines(db, lines)
    except PyMongoError as exc:
        log.info("eventlog: cannot check shipped events yet (%s)", exc)
        return None


def _start() -> Spool:
    from django_hook.conf import eventlog_settings

    s = eventlog_settings()
    # The broker of the site's settings (which may override the environment's).
    from tasks.app import app

    app.conf.broker_url = s.broker_url
    spool = Spool(s.spool_dir, max_bytes=s.spool_max_bytes)
    # raw: lines are published as written; parsing them is the worker's job.
    shipper = Shipper(spool, _publish, batch=s.ship_batch, interval_ms=s.ship_interval, raw=True,
                      verify=_verify if s.reconcile_after > 0 else None, verify_after=s.reconcile_after)
    shipper.start()
    _state.update(pid=os.getpid(), spool=spool, shipper=shipper)
    return spool


def spool() -> Spool:
    """This process's spool (starting spool and shipper on first use)."""
    current = _state["spool"]
    if current is not None and _state["pid"] == os.getpid():
        return current
    with _lock:
        if _state["spool"] is None or _state["pid"] != os.getpid():
            return _start()
        return _state["spool"]


def shipper() -> Shipper | None:
    return _state["shipper"] if _state["pid"] == os.getpid() else None


def _forget_after_fork() -> None:
    """In a forked child: drop the parent's spool without touching its files.

    The inherited lock descriptor is closed so that, if the parent dies, its
    segments can be adopted (an inherited descriptor would keep its flock).
    """
    old = _state["spool"]
    if old is not None:
        for fd in (old._fd, old._lock_fd):  # noqa: SLF001 - deliberate: fork hygiene
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        old.drops.forget_after_fork()
    _state.update(pid=None, spool=None, shipper=None)


def _ship_at_exit() -> None:
    current = shipper()
    if current is not None:
        current.stop(drain_timeout=3.0)


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_ship_at_exit)
