"""The one loader of dotted-path settings (``EVENTLOG_PROGRESS_CATALOGUE`` and the like).

Plain Python, so workers, beat and the CLI use it without Django; the Django side
(django_hook.conf.setting_object) turns its error into ImproperlyConfigured. Every
way a path can be wrong (malformed, module missing, module raising on import,
attribute missing, not callable) gives one message naming the setting.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class SettingError(ValueError):
    """A setting names something that cannot be used; str(exc) says which setting and why."""


def load_dotted(setting: str, path: str, *, must_call: bool = True) -> Any:
    """The object ``path`` ("package.module.name") names, for the setting ``setting``.

    Raises SettingError with a message an operator can act on; the original error
    is chained. ``must_call``: the object must be callable (a function or class).
    """
    module_name, _, attribute = path.strip().rpartition(".")
    if not module_name or not attribute:
        raise SettingError(f"{setting}={path!r} is not a dotted path like 'mysite.catalogue.course_for'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a module that raises on import is as broken as a missing one
        raise SettingError(f"{setting}={path!r}: module {module_name!r} cannot be imported "
                           f"({type(exc).__name__}: {exc})") from exc
    try:
        found = getattr(module, attribute)
    except AttributeError as exc:
        raise SettingError(f"{setting}={path!r}: module {module_name!r} has no attribute {attribute!r}") from exc
    if must_call and not callable(found):
        raise SettingError(f"{setting}={path!r} is a {type(found).__name__}, not a function")
    return found


def load_optional(setting: str, path: str) -> Callable[..., Any] | None:
    """load_dotted for an optional setting: None when it is empty."""
    return load_dotted(setting, path) if path.strip() else None
