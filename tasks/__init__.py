"""Celery wiring of the pipeline: ``celery -A tasks worker -Q eventlog.enrich,eventlog.store``."""

from tasks import enrich, store, worker_setup  # noqa: F401  (registers tasks and signals)
from tasks.app import app

__all__ = ["app"]
