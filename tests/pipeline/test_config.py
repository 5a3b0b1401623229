"""pipeline.config.load_settings: defaults, environment, overrides."""

from __future__ import annotations

import dataclasses
import os
import tempfile

import pytest

from pipeline.config import DEFAULT_SKIP_PATHS, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EVENTLOG_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert s == Settings()
    assert s.broker_url == "redis://127.0.0.1:6379/0"
    assert s.mongo_url == "mongodb://127.0.0.1:27017"
    assert s.mongo_db == "logs"
    assert s.batch_size == 1000
    assert s.flush_interval == 1.0
    assert s.geoip_city_db == ""
    assert s.spool_dir == os.path.join(tempfile.gettempdir(), "eventlog-spool")
    assert s.anonymize_ip is True  # on for new installs: docs/retention.md
    assert s.spool_max_bytes == 1 << 30
    assert s.retention_days == 395
    assert s.coordinate_precision == 2
    assert s.ship_batch == 500
    assert s.ship_interval == 200
    assert s.skip_paths == DEFAULT_SKIP_PATHS
    assert "/static/" in s.skip_paths and "/eventlog/collect/" in s.skip_paths
    assert s.web_port == 8000
    assert s.flower_port == 5555


def test_every_setting_has_an_eventlog_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = {bool: ("true", True), int: ("7", 7), float: ("2.5", 2.5), str: ("xyz", "xyz"),
               tuple: ("/a/,/b/", ("/a/", "/b/"))}
    for f in dataclasses.fields(Settings):
        raw, expected = samples[type(f.default)]
        monkeypatch.setenv("EVENTLOG_" + f.name.upper(), raw)
        assert getattr(load_settings(), f.name) == expected, f.name


def test_env_vars_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_BROKER_URL", "amqp://guest:guest@rabbit:5672//")
    monkeypatch.setenv("EVENTLOG_MONGO_URL", "mongodb://db:27018")
    monkeypatch.setenv("EVENTLOG_MONGO_DB", "analytics")
    monkeypatch.setenv("EVENTLOG_BATCH_SIZE", " 250 ")
    monkeypatch.setenv("EVENTLOG_FLUSH_INTERVAL", "0.25")
    monkeypatch.setenv("EVENTLOG_SPOOL_DIR", "/var/spool/eventlog")
    monkeypatch.setenv("EVENTLOG_SHIP_INTERVAL", "50")
    s = load_settings()
    assert s.broker_url == "amqp://guest:guest@rabbit:5672//"
    assert s.mongo_url == "mongodb://db:27018"
    assert s.mongo_db == "analytics"
    assert s.batch_size == 250 and isinstance(s.batch_size, int)
    assert s.flush_interval == 0.25
    assert s.spool_dir == "/var/spool/eventlog"
    assert s.ship_interval == 50
    assert s.ship_batch == 500  # untouched


def test_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_MONGO_DB", "from_env")
    monkeypatch.setenv("EVENTLOG_BATCH_SIZE", "10")
    monkeypatch.setenv("EVENTLOG_SHIP_BATCH", "33")
    s = load_settings({"EVENTLOG_MONGO_DB": "from_django", "EVENTLOG_BATCH_SIZE": "20"})
    assert s.mongo_db == "from_django"
    assert s.batch_size == 20
    assert s.ship_batch == 33  # not overridden: env still applies


def test_overrides_accept_python_values() -> None:
    s = load_settings({"EVENTLOG_BATCH_SIZE": 42, "EVENTLOG_ANONYMIZE_IP": True,
                       "EVENTLOG_SKIP_PATHS": ["/a/", "/b/"], "EVENTLOG_FLUSH_INTERVAL": 3.0})
    assert s.batch_size == 42
    assert s.anonymize_ip is True
    assert s.skip_paths == ("/a/", "/b/")
    assert s.flush_interval == 3.0


def test_overrides_ignore_unrelated_names() -> None:
    assert load_settings({"DEBUG": True, "EVENTLOG_NOT_A_SETTING": "x"}) == Settings()


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("EVENTLOG_BATCH_SIZE", "lots", "int"),
        ("EVENTLOG_BATCH_SIZE", "", "int"),
        ("EVENTLOG_SHIP_INTERVAL", "1.5", "int"),
        ("EVENTLOG_WEB_PORT", "80a", "int"),
        ("EVENTLOG_FLUSH_INTERVAL", "soon", "float"),
    ],
)
def test_bad_number_in_env_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                              kind: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as info:
        load_settings()
    assert str(info.value) == f"{name}={value!r} is not a valid {kind}"


def test_bad_number_in_overrides_names_the_variable() -> None:
    with pytest.raises(ValueError, match="EVENTLOG_SHIP_BATCH='many'"):
        load_settings({"EVENTLOG_SHIP_BATCH": "many"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True), ("true", True), ("True", True), ("YES", True), ("on", True), (" true ", True),
        ("0", False), ("false", False), ("no", False), ("off", False), ("", False), ("maybe", False),
    ],
)
def test_bool_parsing(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("EVENTLOG_ANONYMIZE_IP", raw)
    assert load_settings().anonymize_ip is expected


def test_skip_paths_from_comma_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_SKIP_PATHS", " /static/, /media/ ,,/admin/jsi18n/ ,")
    s = load_settings()
    assert s.skip_paths == ("/static/", "/media/", "/admin/jsi18n/")
    assert isinstance(s.skip_paths, tuple)
    # the middleware relies on str.startswith(tuple)
    assert "/media/x.png".startswith(s.skip_paths)
    assert not "/watch/a/b/c/".startswith(s.skip_paths)


def test_empty_skip_paths_means_skip_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_SKIP_PATHS", "")
    assert load_settings().skip_paths == ()


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.batch_size = 1  # type: ignore[misc]
