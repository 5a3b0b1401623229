"""Celery beat schedule (periodic rollups and maintenance); wired in celeryconfig."""

BEAT_SCHEDULE: dict = {}
