"""Celery wiring of the pipeline: ``celery -A tasks worker -Q eventlog.enrich,eventlog.store``.

Importing this package loads only the app; workers import the task modules
(tasks.app.TASK_MODULES) when they start.
"""

from tasks.app import app

__all__ = ["app"]
