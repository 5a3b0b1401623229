"""EVENTLOG_* settings for the Django side: environment, overridden by settings.py."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from pipeline.config import Settings, load_settings
from pipeline.loading import SettingError, load_optional


@lru_cache(maxsize=1)
def eventlog_settings() -> Settings:
    overrides = {k: getattr(django_settings, k) for k in dir(django_settings) if k.startswith("EVENTLOG_")}
    return load_settings(overrides)


@receiver(setting_changed)
def _forget_settings(setting: str, **_: object) -> None:
    """Tests that override an EVENTLOG_* setting see the new value."""
    if setting.startswith("EVENTLOG_"):
        eventlog_settings.cache_clear()


def setting_object(name: str) -> Any:
    """The callable a dotted-path EVENTLOG_* setting names (``name`` e.g. "EVENTLOG_PROGRESS_CATALOGUE"),
    or None when the setting is empty. ImproperlyConfigured, with what is wrong, otherwise."""
    path = getattr(eventlog_settings(), name.removeprefix("EVENTLOG_").lower())
    try:
        return load_optional(name, path)
    except SettingError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
