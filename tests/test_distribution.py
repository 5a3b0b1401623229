"""The built wheel carries what a site needs: every package, the template tags, the
templates and the static files (tracker, dashboard, vendored libraries with their licences).

Built from the checkout with pip, installed into a directory of its own and imported from
outside the repository, so only what the wheel holds can be found.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy.stack import ROOT

NEEDED = [
    "django_hook/templatetags/__init__.py",
    "django_hook/templatetags/eventlog.py",
    "django_hook/static/eventlog/tracker.js",
    "django_hook/static/eventlog/dashboard.js",
    "django_hook/templates/eventlog/dashboard.html",
    "django_hook/templates/eventlog/dashboard_card.html",
    "django_hook/templates/eventlog/dashboard_table.html",
    "django_hook/static/eventlog/vendor/chartjs/chart.umd.min.js",
    "django_hook/static/eventlog/vendor/chartjs/LICENSE",
    "pipeline/reconcile.py",
    "pipeline/enrich/geo.py",
    "tasks/batching.py",
    "celeryconfig.py",
    "beat_schedule.py",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = tmp_path_factory.mktemp("source") / "eventlog"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "var", "node_modules",
                                                               "__pycache__", "loadtest", "tests", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                   check=True, capture_output=True)
    return next(out.glob("eventlog-*.whl"))


def test_the_wheel_holds_every_file_the_app_needs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [n for n in NEEDED if n not in names] == []


def test_installed_alone_its_template_tags_and_files_are_found(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    probe = (
        "import importlib.resources as r, django_hook, django_hook.templatetags.eventlog as t;"
        f"assert str(r.files('django_hook')).startswith({str(target)!r}), django_hook.__file__;"
        "assert (r.files('django_hook') / 'static/eventlog/tracker.js').is_file();"
        "assert (r.files('django_hook') / 'templates/eventlog/dashboard.html').is_file();"
        "print('ok')"
    )
    # -P: nothing from the working directory; PYTHONPATH: the wheel's files only, then the venv.
    answer = subprocess.run([sys.executable, "-P", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(target), "DJANGO_SETTINGS_MODULE": ""})
    assert answer.stdout.strip() == "ok", answer.stderr
