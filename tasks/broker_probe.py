"""The broker connection health checks read queue depths through: one per process and
broker URL, kept open between checks, with short timeouts.

Opening a connection per check (as health/ once did, with a 2 s timeout and a retry)
let a handful of monitor requests during an outage tie up every sync web worker.
Checks take turns on the shared connection (kombu connections are not thread-safe);
a failed one is closed and the next check opens a new one. A connection that worked
before and fails now (the broker restarted, a proxy dropped it) is retried once on a
fresh connection at once, so a stale socket is not reported as an outage.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from tasks.app import app

T = TypeVar("T")

# Seconds to connect, and to wait for any answer: a broker that does not answer within
# this is unreachable as far as a health check is concerned.
PROBE_TIMEOUT = 1.0


def _timeouts(url: str) -> dict[str, float]:
    if url.startswith(("redis", "rediss")):
        return {"socket_connect_timeout": PROBE_TIMEOUT, "socket_timeout": PROBE_TIMEOUT}
    return {"read_timeout": PROBE_TIMEOUT, "write_timeout": PROBE_TIMEOUT}


def _open(url: str) -> Any:
    options = {**(app.conf.broker_transport_options or {}), **_timeouts(url)}
    return app.connection_for_read(url, connect_timeout=PROBE_TIMEOUT, transport_options=options)


def _close(conn: Any) -> None:
    try:
        conn.release()
    except Exception:  # noqa: BLE001 - it failed already; closing is best effort
        pass


class BrokerProbe:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conns: dict[str, Any] = {}
        self.opened = 0  # connections opened by this process (tests count them)

    def run(self, url: str, read: Callable[[Any], T]) -> T:
        """``read(connection)`` on this process's connection to ``url``; raises what
        connecting or ``read`` raised (after one retry on a fresh connection if the
        shared one had worked before)."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use or close
                self._pid, self._conns = os.getpid(), {}
            while True:
                conn = self._conns.get(url)
                reused = conn is not None
                if conn is None:
                    conn = self._conns[url] = _open(url)
                    self.opened += 1
                try:
                    conn.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT)
                    return read(conn)
                except Exception:
                    del self._conns[url]
                    _close(conn)
                    if not reused:
                        raise


probe = BrokerProbe()
