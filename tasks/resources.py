"""Per-process resources of a worker, opened lazily after fork.

pymongo clients and GeoIP readers must not cross a fork, so each pool process
opens its own on first use; a pid check catches a fork we were not told of.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

from pipeline.config import Settings, load_settings
from pipeline.store import EventStore

if TYPE_CHECKING:  # enrichment's libraries are the [worker] extra: web processes (health/) go without
    from pipeline.enrich.geo import GeoLocator


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


_per_process: dict[str, object] = {}
_owner_pid = 0


def _get(name: str, factory):  # noqa: ANN001, ANN202
    global _owner_pid
    if _owner_pid != os.getpid():
        _per_process.clear()
        _owner_pid = os.getpid()
    if name not in _per_process:
        _per_process[name] = factory()
    return _per_process[name]


def event_store() -> EventStore:
    s = settings()
    return _get("store", lambda: EventStore(s.mongo_url, s.mongo_db))


def geo_locator() -> GeoLocator:
    from pipeline.enrich.geo import GeoLocator

    return _get("geo", lambda: GeoLocator(settings().geoip_city_db, quiet=True))
