"""eventlog's system checks: each misconfiguration gives its id, and the demo's settings pass."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_hook import checks as eventlog_checks
from django_hook.conf import setting_object
from pipeline.loading import SettingError, load_dotted

DEMO_MIDDLEWARE = [
    "django_hook.middleware.EventLogMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
SHARED_CACHE = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                            "LOCATION": "/nonexistent-cache"}}


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages]


def eventlog_ids() -> list[str]:
    """What `manage.py check` reports of eventlog's own checks (registered by the app's ready())."""
    return [i for i in ids(checks.run_checks(tags=["eventlog"])) if i.startswith("eventlog.")]


def test_the_checks_are_registered_and_a_sane_site_passes(tmp_path: Path) -> None:
    with override_settings(MIDDLEWARE=DEMO_MIDDLEWARE, CACHES=SHARED_CACHE, EVENTLOG_SPOOL_DIR=str(tmp_path / "s")):
        assert eventlog_ids() == []


# ---------------------------------------------------------------- middleware


def test_middleware_not_first_is_an_error() -> None:
    with override_settings(MIDDLEWARE=[*DEMO_MIDDLEWARE[1:], DEMO_MIDDLEWARE[0]]):
        (error,) = eventlog_checks.check_middleware()
    assert error.id == "eventlog.E001" and "position 2" in error.msg and error.hint


def test_middleware_missing_is_a_warning() -> None:
    with override_settings(MIDDLEWARE=DEMO_MIDDLEWARE[1:]):
        assert ids(eventlog_checks.check_middleware()) == ["eventlog.W001"]


# ---------------------------------------------------------------- spool


def test_a_spool_that_cannot_be_created_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with override_settings(EVENTLOG_SPOOL_DIR=str(blocker / "spool")):
        (error,) = eventlog_checks.check_spool()
    assert error.id == "eventlog.E002" and str(blocker / "spool") in error.msg


@contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """A directory nobody can write: mode 0500 for a normal user; root writes through permission
    bits (CI runs as root), so there it is a read-only tmpfs mounted on the directory."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        yield path
        path.chmod(0o700)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_read_only_spool_is_an_error(tmp_path: Path) -> None:
    with read_only_directory(tmp_path / "spool") as spool, override_settings(EVENTLOG_SPOOL_DIR=str(spool)):
        assert ids(eventlog_checks.check_spool()) == ["eventlog.E002"]


def test_a_world_writable_spool_is_an_error(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    spool.chmod(0o777)
    with override_settings(EVENTLOG_SPOOL_DIR=str(spool)):
        assert ids(eventlog_checks.check_spool()) == ["eventlog.E003"]
    spool.chmod(0o750)
    with override_settings(EVENTLOG_SPOOL_DIR=str(spool)):
        assert eventlog_checks.check_spool() == []


def test_a_missing_spool_is_created_as_the_spool_would(tmp_path: Path) -> None:
    with override_settings(EVENTLOG_SPOOL_DIR=str(tmp_path / "new" / "spool")):
        assert eventlog_checks.check_spool() == []
    assert (tmp_path / "new" / "spool").is_dir() and list((tmp_path / "new" / "spool").iterdir()) == []


# ---------------------------------------------------------------- rate limit cache


@pytest.mark.parametrize(("backend", "expected"), [
    ("django.core.cache.backends.locmem.LocMemCache", ["eventlog.W002"]),
    ("django.core.cache.backends.dummy.DummyCache", ["eventlog.W003"]),
    ("django.core.cache.backends.redis.RedisCache", []),
])
def test_the_rate_limit_needs_a_shared_cache(backend: str, expected: list[str]) -> None:
    with override_settings(CACHES={"default": {"BACKEND": backend}}):
        assert ids(eventlog_checks.check_rate_limit_cache()) == expected


def test_the_rate_limit_cache_is_the_default_one_the_budgets_use() -> None:
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
              "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}
    with override_settings(CACHES=caches):
        assert ids(eventlog_checks.check_rate_limit_cache()) == ["eventlog.W002"]


# ---------------------------------------------------------------- the catalogue and the loader


@pytest.mark.parametrize(("path", "says"), [
    ("nodots", "is not a dotted path"),
    ("demo.no_such_module.course_for", "cannot be imported (ModuleNotFoundError"),
    ("demo.catalogue.no_such_function", "has no attribute 'no_such_function'"),
    ("demo.catalogue.CATALOGUE", "is a dict, not a function"),
])
def test_a_broken_catalogue_is_an_error_naming_the_setting(path: str, says: str) -> None:
    with override_settings(EVENTLOG_PROGRESS_CATALOGUE=path):
        (error,) = eventlog_checks.check_catalogue()
        with pytest.raises(ImproperlyConfigured, match="EVENTLOG_PROGRESS_CATALOGUE"):
            setting_object("EVENTLOG_PROGRESS_CATALOGUE")
    assert error.id == "eventlog.E004" and error.msg.startswith(f"EVENTLOG_PROGRESS_CATALOGUE={path!r}")
    assert says in error.msg


def test_a_module_that_raises_on_import_is_reported_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_catalogue.py").write_text("raise RuntimeError('database not ready')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SettingError, match=r"cannot be imported \(RuntimeError: database not ready\)"):
        load_dotted("EVENTLOG_PROGRESS_CATALOGUE", "broken_catalogue.course_for")
    sys.modules.pop("broken_catalogue", None)


def test_the_demo_catalogue_loads_and_the_worker_side_uses_the_same_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    from demo.catalogue import course_for
    from pipeline.config import Settings
    from tasks import rollups as rollup_tasks

    assert setting_object("EVENTLOG_PROGRESS_CATALOGUE") is course_for
    monkeypatch.setattr(rollup_tasks, "settings", lambda: Settings(progress_catalogue="demo.catalogue.nope"))
    assert rollup_tasks._catalogue() is None  # logged with the loader's message; rollups go on


def test_an_empty_catalogue_setting_is_fine() -> None:
    with override_settings(EVENTLOG_PROGRESS_CATALOGUE=""):
        assert eventlog_checks.check_catalogue() == [] and setting_object("EVENTLOG_PROGRESS_CATALOGUE") is None


# ---------------------------------------------------------------- URLs and settings


@pytest.mark.parametrize(("broker", "mongo", "expected"), [
    ("redis://127.0.0.1:6379/0", "mongodb://db.example:27017", []),
    ("amqp://guest:guest@rabbit.example:5672//", "mongodb+srv://cluster.example/", []),
    ("127.0.0.1:6379", "mongodb://db.example:27017", ["eventlog.E005"]),
    ("redis://127.0.0.1:63x79/0", "mongodb://db.example:27017", ["eventlog.E005"]),
    ("redis://127.0.0.1:6379/0", "http://db.example:27017", ["eventlog.E006"]),
    ("redis:///0", "mongodb://", ["eventlog.E005", "eventlog.E006"]),
])
def test_broker_and_store_urls_are_well_formed(broker: str, mongo: str, expected: list[str]) -> None:
    with override_settings(EVENTLOG_BROKER_URL=broker, EVENTLOG_MONGO_URL=mongo):
        assert ids(eventlog_checks.check_urls()) == expected


def test_a_url_in_a_message_has_no_password() -> None:
    with override_settings(EVENTLOG_BROKER_URL="ftp://user:s3cret@broker.example/"):
        (error,) = eventlog_checks.check_urls()
    assert "s3cret" not in error.msg and "user:***@broker.example" in error.msg


def test_an_unreadable_setting_is_one_error_not_a_crash() -> None:
    with override_settings(EVENTLOG_BATCH_SIZE="lots", CACHES=SHARED_CACHE):
        assert eventlog_ids() == ["eventlog.E008"]


# ---------------------------------------------------------------- another `pipeline` package


def test_another_distribution_providing_pipeline_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert eventlog_checks.check_pipeline_package() == []
    # An installed distribution as pip lays it out (dist-info with its RECORD), on sys.path.
    dist_info = tmp_path / "django_pipeline-4.0.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: django-pipeline\nVersion: 4.0.0\n")
    (dist_info / "RECORD").write_text("pipeline/__init__.py,,\ndjango_pipeline-4.0.0.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (error,) = eventlog_checks.check_pipeline_package()
    assert error.id == "eventlog.E007" and "django-pipeline" in error.msg


def test_eventlog_itself_is_no_conflict() -> None:
    assert eventlog_checks.pipeline_conflicts({"pipeline": ["eventlog"], "tasks": ["eventlog"]}) == []
    assert eventlog_checks.pipeline_conflicts({"pipeline": ["eventlog", "django-pipeline"]}) == ["django-pipeline"]
