"""EVENTLOG_* settings for the Django side: environment, overridden by settings.py."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings as django_settings

from pipeline.config import Settings, load_settings


@lru_cache(maxsize=1)
def eventlog_settings() -> Settings:
    overrides = {k: getattr(django_settings, k) for k in dir(django_settings) if k.startswith("EVENTLOG_")}
    return load_settings(overrides)
