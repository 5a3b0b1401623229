"""Budgets counted in Django's cache: how much a key (a client IP, an IP and a user name)
may spend per period, in any unit (events, bytes, failed logins).

django-ratelimit, which the beacon used before, counts one per request; a tracker
request carries up to 50 events, so a limit in requests let one client send 50 times
what it said. Here a caller spends what a request really costs.

Fixed windows: the counter of ``key`` for the current period lives in the cache under
a name holding the window's number, and expires with it. Increments are atomic where
the cache's ``incr`` is (Redis, Memcached, the per-process memory cache), so limits
hold across processes when the cache is shared. A cache that fails (Redis away) lets
requests through, logged once a minute: a rate limit must not take the site down with it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from django.core.cache import caches

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_last_warning = 0.0


@dataclass(frozen=True)
class Rate:
    amount: int  # what may be spent ...
    period: int  # ... per this many seconds


@lru_cache(maxsize=32)
def parse_rate(text: str) -> Rate:
    """``"600/m"``, ``"5/15m"``, ``"1000000/h"``: an amount per (a number of) s, m, h or d."""
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a rate like '600/m' or '5/15m'")
    amount, count, unit = match.groups()
    return Rate(int(amount), int(count or 1) * _UNITS[unit])


def _warn(exc: Exception) -> None:
    global _last_warning
    if time.monotonic() - _last_warning > 60:
        _last_warning = time.monotonic()
        log.warning("eventlog: rate-limit cache unavailable (%s); requests are let through", exc)


class Budget:
    """What each key may spend of ``rate`` (a Rate or its text), in the cache ``alias``."""

    def __init__(self, name: str, rate: Rate | str, alias: str = "default") -> None:
        self.name = name
        self.rate = parse_rate(rate) if isinstance(rate, str) else rate
        self.alias = alias

    def _cache_key(self, key: str) -> str:
        # Hashed: a key may hold characters (spaces, a user name's) a cache backend refuses.
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        return f"eventlog:budget:{self.name}:{int(time.time()) // self.rate.period}:{digest}"

    def spend(self, key: str, amount: int = 1) -> bool:
        """Count ``amount`` for ``key``; False when the period's total is now over the budget."""
        return self._add(key, amount) <= self.rate.amount

    def used(self, key: str) -> int:
        """What ``key`` has spent this period."""
        try:
            return int(caches[self.alias].get(self._cache_key(key)) or 0)
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            _warn(exc)
            return 0

    def exhausted(self, key: str) -> bool:
        """Whether ``key`` has nothing left this period (without spending)."""
        return self.used(key) >= self.rate.amount

    def retry_after(self) -> int:
        """Seconds until the current period ends (a 429's Retry-After)."""
        return self.rate.period - int(time.time()) % self.rate.period

    def _add(self, key: str, amount: int) -> int:
        cache, name = caches[self.alias], self._cache_key(key)
        try:
            if cache.add(name, amount, timeout=self.rate.period + 1):
                return amount
            try:
                return cache.incr(name, amount)
            except ValueError:  # expired between add and incr: the next window's first spend
                cache.add(name, amount, timeout=self.rate.period + 1)
                return amount
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            _warn(exc)
            return 0
