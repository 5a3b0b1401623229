"""Django system checks (`manage.py check`, and every runserver/migrate): misconfiguration
found at deploy time, each with an id, a message and a hint, instead of at run time.

| id | what |
| --- | --- |
| eventlog.E001 | EventLogMiddleware is in MIDDLEWARE but not first (outermost) |
| eventlog.W001 | EventLogMiddleware is not in MIDDLEWARE at all (only the tracker records) |
| eventlog.E002 | EVENTLOG_SPOOL_DIR cannot be created or written by this user |
| eventlog.E003 | EVENTLOG_SPOOL_DIR is world-writable |
| eventlog.W002 | the beacon's rate limit counts in a per-process cache (LocMemCache) |
| eventlog.W003 | the beacon's rate limit counts in DummyCache (no limit at all) |
| eventlog.E004 | EVENTLOG_PROGRESS_CATALOGUE does not import or is not callable |
| eventlog.E005 | EVENTLOG_BROKER_URL is not a broker URL |
| eventlog.E006 | EVENTLOG_MONGO_URL is not a MongoDB URL |
| eventlog.E007 | another installed distribution provides a top-level `pipeline` package |
| eventlog.E008 | an EVENTLOG_* setting cannot be read (e.g. a number that is not one) |
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

import pipeline
from django_hook.conf import eventlog_settings, setting_object
from pipeline.config import Settings, safe_url

MIDDLEWARE = "django_hook.middleware.EventLogMiddleware"
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "sentinel", "redis+socket")
MONGO_SCHEMES = ("mongodb", "mongodb+srv")
PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache",)
NO_CACHES = ("django.core.cache.backends.dummy.DummyCache",)
# Our own distribution's name: it provides `pipeline` too, when installed.
DISTRIBUTION = "eventlog"


def _settings() -> Settings | None:
    """The EVENTLOG_* settings; None when they cannot be read (check_settings reports why)."""
    try:
        return eventlog_settings()
    except ValueError:
        return None


@checks.register("eventlog")
def check_settings(app_configs: Sequence[Any] | None = None, **_: Any) -> list[checks.CheckMessage]:
    try:
        eventlog_settings()
    except ValueError as exc:
        return [checks.Error(f"eventlog cannot read its settings: {exc}.",
                             hint="Fix the value in settings.py or the environment.", id="eventlog.E008")]
    return []


@checks.register("eventlog")
def check_middleware(app_configs: Sequence[Any] | None = None, **_: Any) -> list[checks.CheckMessage]:
    """EventLogMiddleware first: it records the response the visitor really got (after every
    other middleware's redirects and errors) and reads request.user lazily on the way out."""
    middleware = list(getattr(django_settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE not in middleware:
        return [checks.Warning(
            f"{MIDDLEWARE} is not in MIDDLEWARE: page views are not recorded (only the tracker's beacons).",
            hint=f'MIDDLEWARE = ["{MIDDLEWARE}", *MIDDLEWARE]', id="eventlog.W001")]
    position = middleware.index(MIDDLEWARE)
    if position:
        return [checks.Error(
            f"{MIDDLEWARE} is at position {position} of MIDDLEWARE; it must be first (outermost).",
            hint=(f"Move it to the top: responses made by {middleware[0]} and the others above it would be "
                  "recorded wrongly or not at all."),
            id="eventlog.E001")]
    return []


def _unwritable(spool: Path) -> str | None:
    """Why this user cannot write spool segments in ``spool``; None if it can.

    Tried for real (create the directory as the spool would, write and remove a file):
    permission bits alone do not tell (root, ACLs, read-only mounts).
    """
    try:
        spool.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=spool, prefix=".eventlog-check-"):
            pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


@checks.register("eventlog")
def check_spool(app_configs: Sequence[Any] | None = None, **_: Any) -> list[checks.CheckMessage]:
    """The spool must be writable by this user (the web processes' user: run the check as it),
    and nobody else may write there: the shipper publishes whatever lines it finds."""
    s = _settings()
    if s is None:
        return []
    spool = Path(s.spool_dir)
    problem = _unwritable(spool)
    if problem:
        return [checks.Error(
            f"EVENTLOG_SPOOL_DIR={spool} cannot be written by this user (uid {os.getuid()}): {problem}.",
            hint="Set EVENTLOG_SPOOL_DIR to a persistent directory owned by the user the web processes run as.",
            id="eventlog.E002")]
    if spool.stat().st_mode & stat.S_IWOTH:
        return [checks.Error(f"EVENTLOG_SPOOL_DIR={spool} is world-writable: anyone on the host could inject "
                             "events.", hint=f"chmod o-w {spool}", id="eventlog.E003")]
    return []


@checks.register("eventlog")
def check_rate_limit_cache(app_configs: Sequence[Any] | None = None, **_: Any) -> list[checks.CheckMessage]:
    """The beacon's budgets (django_hook.ratelimit) count in Django's default cache: a per-process
    cache multiplies the limit by the number of web processes, DummyCache never limits."""
    alias = "default"
    backend = (getattr(django_settings, "CACHES", None) or {}).get(alias, {}).get("BACKEND", "")
    hint = f'Point CACHES["{alias}"] at a cache all web processes share (Redis, Memcached, database).'
    if backend in PER_PROCESS_CACHES:
        return [checks.Warning(
            f"The tracker's rate limit (EVENTLOG_BEACON_RATE) counts in the {alias!r} cache, {backend}: each web "
            "process counts alone, so the real limit is the setting times the number of processes.",
            hint=hint, id="eventlog.W002")]
    if backend in NO_CACHES:
        return [checks.Warning(
            f"The tracker's rate limit (EVENTLOG_BEACON_RATE) counts in the {alias!r} cache, {backend}: it never "
            "limits anything.", hint=hint, id="eventlog.W003")]
    return []


@checks.register("eventlog")
def check_catalogue(app_configs: Sequence[Any] | None = None, **_: Any) -> list[checks.CheckMessage]:
    if _settings() is None:
        return []
    try:
        setting_object("EVENTLOG_PROGRESS_CATALOGUE")
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint="Give the dotted path of your function (foss, language) -> "
                             '[{"title", "length", "url"}] | None, or leave the setting empty.',
                             id="eventlog.E004")]
    return []


def _url_problem(url: str, schemes: Sequence[str]) -> str | None:
    """Why ``url`` is not a URL of one of ``schemes``; None if it looks right (nothing is contacted)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in schemes:
        return f"scheme {parts.scheme or '(none)'!r} is not one of {', '.join(schemes)}"
    if not parts.hostname and parts.scheme not in ("redis+socket",):
        return "it names no host"
    return None


@checks.register("eventlog")
def check_urls(app_configs: Sequence[Any] | None = None, **_: Any) -> list[checks.CheckMessage]:
    """Broker and store URLs well-formed (their reachability is health/'s business)."""
    s = _settings()
    if s is None:
        return []
    errors: list[checks.CheckMessage] = []
    for name, url, schemes, example, check_id in (
            ("EVENTLOG_BROKER_URL", s.broker_url, BROKER_SCHEMES, "redis://127.0.0.1:6379/0", "eventlog.E005"),
            ("EVENTLOG_MONGO_URL", s.mongo_url, MONGO_SCHEMES, "mongodb://db.example:27017", "eventlog.E006")):
        problem = _url_problem(url, schemes)
        if problem:
            errors.append(checks.Error(f"{name}={safe_url(url)!r} is not usable: {problem}.",
                                       hint=f"For example {example}", id=check_id))
    return errors


def pipeline_conflicts(distributions: Mapping[str, list[str]] | None = None) -> list[str]:
    """Installed distributions other than eventlog that provide a top-level ``pipeline``."""
    provided = (distributions if distributions is not None else metadata.packages_distributions()).get("pipeline", [])
    return sorted({d for d in provided if d.lower().replace("_", "-") != DISTRIBUTION})


@checks.register("eventlog")
def check_pipeline_package(app_configs: Sequence[Any] | None = None, **_: Any) -> list[checks.CheckMessage]:
    """eventlog's core is the top-level package ``pipeline``; another distribution's package of that
    name (django-pipeline's) shadows it or is shadowed by it, whichever comes first on sys.path."""
    others = pipeline_conflicts()
    if not others:
        return []
    return [checks.Error(
        f"Another installed distribution ({', '.join(others)}) provides a top-level 'pipeline' package, as "
        f"eventlog does; 'import pipeline' finds {getattr(pipeline, '__file__', None) or list(pipeline.__path__)}.",
        hint="eventlog cannot be installed in the same environment as it: use separate virtualenvs for the site "
             "and eventlog, or uninstall it.",
        id="eventlog.E007")]
