"""The per-process spool and shipper behind the hook.

Started lazily on the first event in each process and again in each child after
a fork (gunicorn prefork), since threads and file locks do not survive a fork.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from pipeline.spool import Shipper, Spool

log = logging.getLogger(__name__)

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "spool": None, "shipper": None}


def _publish(events: list[Any]) -> None:
    # Imported here: web processes need Celery only in the shipper thread.
    from tasks.publish import publish_batch

    publish_batch(events)


def _start() -> Spool:
    from django_hook.conf import eventlog_settings

    s = eventlog_settings()
    # The broker of the site's settings (which may override the environment's).
    from tasks.app import app

    app.conf.broker_url = s.broker_url
    spool = Spool(s.spool_dir)
    # raw: lines are published as written; parsing them is the worker's job.
    shipper = Shipper(spool, _publish, batch=s.ship_batch, interval_ms=s.ship_interval, raw=True)
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
    _state.update(pid=None, spool=None, shipper=None)


def _ship_at_exit() -> None:
    current = shipper()
    if current is not None:
        current.stop(drain_timeout=3.0)


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_ship_at_exit)
