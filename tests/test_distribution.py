"""The built wheel carries what a site needs: every package, the template tags, the
templates and the static files (tracker, dashboard, vendored libraries with their licences).

Built from the checkout with pip, installed into a directory of its own and imported from
outside the repository, so only what the wheel holds can be found.
"""

from __future__ import annotations

import ast
import email
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from deploy.stack import ROOT
from tests.helpers.wheel import build_wheel, checkout_files

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
    "django_hook/checks.py",
    "pipeline/__init__.py",
    "pipeline/website_logs.validator.json",
    "pipeline/reconcile.py",
    "pipeline/enrich/geo.py",
    "tasks/batching.py",
    "tasks/cli.py",
    "tasks/__main__.py",
    "celeryconfig.py",
    "beat_schedule.py",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("build"))


def test_the_wheel_holds_every_file_the_app_needs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [n for n in NEEDED if n not in names] == []


def test_installed_alone_its_template_tags_and_files_are_found(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    probe = (
        "import importlib.resources as r, django_hook, django_hook.templatetags.eventlog as t, pipeline;"
        f"assert str(r.files('django_hook')).startswith({str(target)!r}), django_hook.__file__;"
        "assert (r.files('django_hook') / 'static/eventlog/tracker.js').is_file();"
        "assert (r.files('django_hook') / 'templates/eventlog/dashboard.html').is_file();"
        # A regular package (its own __init__), not a namespace another distribution's pipeline/ could join.
        f"assert pipeline.__file__.startswith({str(target)!r}), pipeline.__path__;"
        "from pipeline.store import load_validator; assert load_validator()['$jsonSchema'];"
        "print('ok')"
    )
    # -P: nothing from the working directory; PYTHONPATH: the wheel's files only, then the venv.
    answer = subprocess.run([sys.executable, "-P", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(target), "DJANGO_SETTINGS_MODULE": ""})
    assert answer.stdout.strip() == "ok", answer.stderr


def test_the_wheel_holds_every_file_of_the_packages_in_the_checkout(wheel: Path) -> None:
    """Any module, template, static or data file added to pipeline/, tasks/ or django_hook/ (a new
    subpackage too, given its __init__.py) is in the wheel without a change to pyproject.toml."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [f for f in checkout_files() if f not in names] == []
    assert not [n for n in names if n.split("/")[0] in ("demo", "loadtest", "deploy", "tests")]


def test_dependencies_are_ranges_with_extras_and_a_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        meta = email.message_from_bytes(z.read("eventlog-0.1.0.dist-info/METADATA"))
        entry_points = z.read("eventlog-0.1.0.dist-info/entry_points.txt").decode()
    requires = meta.get_all("Requires-Dist")
    assert [r for r in requires if "==" in r.split(";")[0]] == []  # no exact pin is forced on a site
    base = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("Django") for r in base) and not any(r.startswith(("geoip2", "flower", "scipy",
                                                                                 "gunicorn")) for r in base)
    assert any(r.startswith("geoip2") and 'extra == "worker"' in r for r in requires)
    assert any(r.startswith("flower") and 'extra == "flower"' in r for r in requires)
    assert set(meta.get_all("Provides-Extra")) >= {"worker", "flower"}
    assert "eventlog = tasks.cli:main" in entry_points


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for relative in checkout_files():
        if relative.endswith(".py"):
            for node in ast.walk(ast.parse((ROOT / relative).read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_library_the_packages_import_is_a_declared_dependency() -> None:
    """A new import (in any module, worker-only ones included) needs its distribution in pyproject.toml:
    the wheel's dependencies are a static list, not requirements.txt."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_canonical(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in
                [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]}
    # deploy: the demo stack, imported by tasks/cli.py only from a checkout (it says so elsewhere).
    ours = {"pipeline", "tasks", "django_hook", "celeryconfig", "beat_schedule", "deploy"}
    providers = metadata.packages_distributions()
    missing = {}
    for name in sorted(_imported_top_levels() - ours - set(sys.stdlib_module_names) - {"__future__"}):
        distributions = {_canonical(d) for d in providers.get(name, [name])}
        if not distributions & declared:
            missing[name] = sorted(distributions)
    assert missing == {}
