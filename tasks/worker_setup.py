"""Worker start-up: report configuration problems once, prepare MongoDB."""

from __future__ import annotations

import logging

from celery.signals import worker_init
from pymongo.errors import PyMongoError

from pipeline.enrich.geo import GeoLocator
from pipeline.store import EventStore, load_validator
from tasks.resources import settings

log = logging.getLogger(__name__)


def prepare_store() -> None:
    """Indexes and validator, idempotently; a store that is down is retried by the tasks."""
    s = settings()
    try:
        store = EventStore(s.mongo_url, s.mongo_db)
        store.ensure_indexes()
        store.apply_validator(load_validator())
        store.client.close()
    except PyMongoError as exc:
        log.warning("eventlog: could not prepare MongoDB at start (%s); will retry on first write", exc)


@worker_init.connect
def _on_worker_init(**_: object) -> None:
    geo = GeoLocator(settings().geoip_city_db)  # logs a missing/corrupt database once
    if geo.available:
        log.info("eventlog: GeoIP database %s loaded", geo.path)
    prepare_store()
