"""health() answered from a per-process cache: a burst of monitor probes (or a monitor
polling every second on every web process) costs one check per EVENTLOG_HEALTH_CACHE
seconds, and one check at a time.

While one thread checks, the others answer at once with the previous figures; only the
very first check of a process makes the others wait for it (there is nothing to answer
with yet). The web's ``health/`` view and anything else that polls use it; ``health()``
itself stays uncached for callers that want the present (the CLI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.config import Settings
from tasks.health import health

Result = tuple[bool, dict[str, Any]]


class HealthCache:
    """The last result of ``compute`` and when it was made, refreshed by one thread at a time."""

    def __init__(self, compute: Callable[[Settings], Result]) -> None:
        self.compute = compute
        self._lock = threading.Lock()  # held by the thread that computes
        self._result: Result | None = None
        self._made = 0.0  # time.monotonic() of _result
        self._for: Settings | None = None  # the settings _result was computed with
        self.computed = 0  # how many checks this process ran (tests count them)

    def _fresh(self, s: Settings) -> bool:
        # Other settings (a test's override) make other figures.
        return (self._result is not None and (self._for is s or self._for == s)
                and time.monotonic() - self._made < s.health_cache)

    def get(self, s: Settings) -> Result:
        result = self._result
        if self._fresh(s):
            return result  # type: ignore[return-value]
        # Someone else is checking: answer with what we have; wait only if we have nothing.
        if not self._lock.acquire(blocking=result is None):
            return result  # type: ignore[return-value]  # not None: a blocking acquire succeeds
        try:
            if self._fresh(s):
                return self._result  # type: ignore[return-value]  # made while we waited for the lock
            self._result, self._made, self._for = self.compute(s), time.monotonic(), s
            self.computed += 1
            return self._result
        finally:
            self._lock.release()

    def clear(self) -> None:
        self._result = None


_cache = HealthCache(health)


def cached_health(s: Settings) -> Result:
    """health(s), at most EVENTLOG_HEALTH_CACHE seconds old; one check at a time per process."""
    return _cache.get(s)
