"""EVENTLOG_* settings for the Django side: environment, overridden by settings.py."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from pipeline.config import Settings, load_settings


@lru_cache(maxsize=1)
def eventlog_settings() -> Settings:
    overrides = {k: getattr(django_settings, k) for k in dir(django_settings) if k.startswith("EVENTLOG_")}
    return load_settings(overrides)


@receiver(setting_changed)
def _forget_settings(setting: str, **_: object) -> None:
    """Tests that override an EVENTLOG_* setting see the new value."""
    if setting.startswith("EVENTLOG_"):
        eventlog_settings.cache_clear()
