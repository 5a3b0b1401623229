"""deploy/systemd/ cannot rot silently: systemd accepts the units, their commands parse
and name queues celeryconfig declares, and the environment template defines what they use."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import celeryconfig
from deploy.stack import BIN, ROOT
from pipeline.config import Settings, load_settings

UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
ENV_TEMPLATE = ROOT / "deploy" / "eventlog.env.example"
INSTALL_ROOT = "/opt/eventlog"  # where deploy/README.md installs the checkout
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
             "User": "eventlog", "Group": "eventlog"}


def service_section(unit: Path) -> dict[str, list[str]]:
    """Key -> values of the [Service] section (a key may repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def template_values() -> dict[str, str]:
    values = {}
    for line in ENV_TEMPLATE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def exec_start(unit: Path) -> list[str]:
    """ExecStart as argv, ${VAR} taken from the template and %H as systemd would expand it."""
    env = template_values()
    command = service_section(unit)["ExecStart"][0]
    command = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], command).replace("%H", "host")
    return shlex.split(command.replace("%%", "%"))


def units_of(kind: str) -> list[Path]:
    return [u for u in UNITS if kind in exec_start(u)[:4]]


def test_there_is_a_unit_per_process() -> None:
    assert [u.name for u in UNITS] == ["eventlog-beat.service", "eventlog-flower.service", "eventlog-web.service",
                                       "eventlog-worker-enrich.service", "eventlog-worker-store.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    # The install paths of deploy/README.md point at this checkout, so that systemd can
    # check the executables exist; everything else is verified as written.
    for unit in UNITS:
        text = unit.read_text().replace(f"{INSTALL_ROOT}/venv/bin/", f"{BIN}/").replace(INSTALL_ROOT, str(ROOT))
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "eventlog-" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_each_unit_is_hardened_and_restarts(unit: Path) -> None:
    service = service_section(unit)
    for key, value in HARDENING.items():
        assert service.get(key) == [value], (unit.name, key)
    assert service["Restart"] == ["always"]
    assert service["EnvironmentFile"][0] == "/etc/eventlog/eventlog.env"
    assert exec_start(unit)[0].startswith(f"{INSTALL_ROOT}/venv/bin/")


def test_workers_shut_down_warm() -> None:
    # SIGTERM to the main process only: Celery's warm shutdown; SIGKILL after the timeout.
    for unit in units_of("worker"):
        service = service_section(unit)
        assert service["KillSignal"] == ["SIGTERM"] and service["KillMode"] == ["mixed"], unit.name
        assert int(service["TimeoutStopSec"][0]) >= 30, unit.name


def test_the_workers_consume_every_stage_queue_and_nothing_else() -> None:
    declared = {q.name for q in celeryconfig.task_queues}
    consumed: list[str] = []
    for unit in units_of("worker"):
        argv = exec_start(unit)
        assert argv[1:3] == ["-A", "tasks"], unit.name
        consumed += argv[argv.index("-Q") + 1].split(",")
    assert sorted(consumed) == sorted(declared)
    assert celeryconfig.DEAD_QUEUE not in consumed  # consuming it would run poison messages again


@pytest.mark.parametrize("unit", [u for u in UNITS if "celery" in u.read_text()], ids=lambda u: u.name)
def test_celery_accepts_each_command_line(unit: Path) -> None:
    # Celery's CLI (click) parses every option before it acts on --help: an option that
    # no longer exists fails here.
    argv = [str(BIN / "celery"), *exec_start(unit)[1:], "--help"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (unit.name, result.stderr[-2000:])


def test_gunicorn_loads_the_wsgi_application_of_the_template() -> None:
    argv = [str(BIN / "gunicorn"), "--check-config", *exec_start(UNITS[2])[1:]]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "demo.settings",
                                 "EVENTLOG_VAR_DIR": "/nonexistent-eventlog-var", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_the_template_defines_what_the_units_use_and_only_known_settings() -> None:
    env = template_values()
    used = {name for unit in UNITS for name in re.findall(r"\$\{(\w+)\}", unit.read_text())}
    assert used <= set(env), used - set(env)
    known = {"EVENTLOG_" + name.upper() for name in Settings.__dataclass_fields__}
    for name in env:
        if name.startswith("EVENTLOG_"):
            assert name in known or name in used, f"{name}: neither a setting nor used by a unit"
    assert env["EVENTLOG_QUEUE_TYPE"] in ("classic", "quorum")
    settings = load_settings({k: v for k, v in env.items() if k in known})  # every value reads as its type
    assert settings.spool_dir == env["EVENTLOG_SPOOL_DIR"]


def test_the_spool_and_the_beat_schedule_are_writable() -> None:
    web, beat = (service_section(ROOT / "deploy" / "systemd" / n) for n in ("eventlog-web.service",
                                                                            "eventlog-beat.service"))
    assert template_values()["EVENTLOG_SPOOL_DIR"] in web["ReadWritePaths"][0].split()
    schedule = exec_start(ROOT / "deploy" / "systemd" / "eventlog-beat.service")[-1]
    assert Path(schedule).parent == Path(beat["ReadWritePaths"][0])
