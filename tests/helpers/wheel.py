"""The wheel built from the checkout, as a site would get it (tests/test_distribution.py and
tests/integration/test_new_site.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from deploy.stack import ROOT

PACKAGES = ("pipeline", "tasks", "django_hook")  # the top-level packages the wheel carries
MODULES = ("celeryconfig.py", "beat_schedule.py")
LEFT_OUT = ("__pycache__", "*.pyc")


def build_wheel(tmp: Path) -> Path:
    """Build the wheel (pip, isolated build, no dependencies) from a copy of the checkout."""
    out = tmp / "wheel"
    # A copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = tmp / "source" / "eventlog"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "var", "node_modules",
                                                               "__pycache__", "loadtest", "tests", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                   check=True, capture_output=True)
    return next(out.glob("eventlog-*.whl"))


def checkout_files() -> list[str]:
    """Every file of the packages and modules in the checkout (what the wheel must hold)."""
    files = list(MODULES)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path.relative_to(ROOT).as_posix())
    return files
