"""The documentation keeps up with the code: every setting the code reads is in docs/settings.md,
and every relative link in the README and docs/ points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = [ROOT / "celeryconfig.py", ROOT / "beat_schedule.py",
        *[p for d in ("pipeline", "tasks", "django_hook", "deploy") for p in (ROOT / d).rglob("*.py")]]
SETTING = re.compile(r"\bEVENTLOG_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def settings_in_code() -> set[str]:
    return {name for path in CODE for name in SETTING.findall(path.read_text())}


def test_every_setting_the_code_reads_is_documented() -> None:
    documented = set(SETTING.findall((ROOT / "docs" / "settings.md").read_text()))
    missing = sorted(settings_in_code() - documented)
    assert not missing, f"settings read by the code but not in docs/settings.md: {missing}"


def test_the_settings_scan_sees_the_known_settings() -> None:
    assert {"EVENTLOG_BROKER_URL", "EVENTLOG_MONGO_URL", "EVENTLOG_SPOOL_DIR"} <= settings_in_code()


def test_relative_links_point_at_existing_files() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "deploy").glob("*.md")]
    broken = [f"{page.relative_to(ROOT)} -> {target}"
              for page in pages for target in LINK.findall(page.read_text())
              if "://" not in target and not target.startswith("mailto:")
              and not (page.parent / target).exists()]
    assert not broken, broken
