"""A brand-new Django site adopts eventlog exactly as docs/install.md says, from the built wheel only.

The wheel goes into a fresh virtualenv outside the repository (dependencies from the package
index, constrained to requirements.txt's pins for repeatability); `django-admin startproject`
makes the site; the three adoption steps are applied; the site is served by a real HTTP server
process and the Celery worker runs from the installed package (cwd outside the repository, no
PYTHONPATH). The web side is served before the `[worker]` extra is installed, so it needs none
of the enrichment libraries. Checks: the page view is stored in MongoDB, the tracker script is
served, the dashboard renders for a staff user, `manage.py check` passes, the `eventlog` script
works and says that the demo stack is not part of the package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deploy.stack import ROOT, Proc, free_port, wait_for_port
from tests.helpers.pipeline import purge_queues, wait_until
from tests.helpers.wheel import build_wheel

pytestmark = pytest.mark.integration

PASSWORD = "new-site-password"

# Step 2 of docs/install.md, appended to the settings.py that startproject wrote.
SETTINGS = '''
# --- eventlog (docs/install.md)
import os
INSTALLED_APPS += ["django_hook"]
MIDDLEWARE = ["django_hook.middleware.EventLogMiddleware", *MIDDLEWARE]
EVENTLOG_BROKER_URL = os.environ["EVENTLOG_BROKER_URL"]
EVENTLOG_MONGO_URL = os.environ["EVENTLOG_MONGO_URL"]
EVENTLOG_SPOOL_DIR = os.environ["EVENTLOG_SPOOL_DIR"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                      "LOCATION": os.environ["EVENTLOG_BROKER_URL"]}}
# --- the site's own page, for the test
TEMPLATES[0]["DIRS"] = [BASE_DIR / "templates"]
'''

URLS = '''
# --- eventlog (docs/install.md)
from django.urls import include
from django.views.generic import TemplateView
urlpatterns += [
    path("eventlog/", include("django_hook.urls")),
    path("", TemplateView.as_view(template_name="home.html")),
]
'''

TEMPLATE = """<!doctype html>
{% load eventlog %}
<html><head><title>A new site</title>{% eventlog_tracker %}</head><body><h1>Welcome</h1></body></html>
"""


def spawn(name: str, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> Proc:
    """A process with exactly ``env`` (Proc.start would add this process's environment) in ``cwd``."""
    proc = Proc(name, cmd, env=env, log=log)
    proc.popen = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    return proc


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    answer = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert answer.returncode == 0, f"{cmd}\n{answer.stdout[-3000:]}\n{answer.stderr[-3000:]}"
    return answer.stdout + answer.stderr


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside the repository (pytest's base temp is under /tmp)."""
    place = tmp_path_factory.mktemp("new-site")
    assert ROOT not in place.parents
    return place


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop(timeout=10)


def test_a_new_site_adopts_eventlog_from_the_wheel(outside: Path, mongo, redis_url: str,  # noqa: ANN001
                                                   procs: list[Proc]) -> None:
    purge_queues(redis_url)
    db_name = f"newsite_{uuid.uuid4().hex[:8]}"
    # Nothing of the repository: no PYTHONPATH, no DJANGO_SETTINGS_MODULE, no EVENTLOG_* of the caller.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EVENTLOG_", "PYTHON", "DJANGO_", "VIRTUAL_ENV"))}
    env.update(EVENTLOG_BROKER_URL=redis_url, EVENTLOG_MONGO_URL=mongo.url, EVENTLOG_MONGO_DB=db_name,
               EVENTLOG_SPOOL_DIR=str(outside / "spool"), EVENTLOG_SHIP_INTERVAL="100",
               EVENTLOG_FLUSH_INTERVAL="0.5", PIP_DISABLE_PIP_VERSION_CHECK="1")
    venv = outside / "venv"
    py, bin_dir = venv / "bin" / "python", venv / "bin"
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"

    # Step 1: install the package (the web side: no extra).
    wheel = build_wheel(outside / "build")
    run([sys.executable, "-m", "venv", str(venv)], outside, env)
    constraints = ["-c", str(ROOT / "requirements.txt")]
    run([str(py), "-m", "pip", "install", "-q", str(wheel), *constraints], outside, env)
    site = outside / "site"
    site.mkdir()
    run([str(bin_dir / "django-admin"), "startproject", "newsite", str(site)], outside, env)

    # Step 2: settings, urls and the tracker in a template.
    (site / "newsite" / "settings.py").open("a").write(SETTINGS)
    (site / "newsite" / "urls.py").open("a").write(URLS)
    (site / "templates").mkdir()
    (site / "templates" / "home.html").write_text(TEMPLATE)

    manage = [str(py), "manage.py"]
    checked = run([*manage, "check", "--fail-level", "WARNING"], site, env)
    assert "no issues" in checked, checked
    run([*manage, "migrate", "--noinput"], site, env)
    run([*manage, "createsuperuser", "--noinput", "--username", "staff", "--email", "staff@example.org"], site,
        {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD})
    # Enrichment libraries are not installed on this (web) side yet.
    assert "ModuleNotFoundError" in subprocess.run([str(py), "-c", "import geoip2"], capture_output=True,
                                                   text=True, env=env).stderr

    port = free_port()
    procs.append(spawn("site", [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], site, env,
                       outside / "site.log"))
    wait_for_port("127.0.0.1", port, 60, "the new site")
    base = f"http://127.0.0.1:{port}"
    page = requests.get(f"{base}/", timeout=10)
    assert page.status_code == 200 and "Welcome" in page.text
    tracker = re.search(r'<script src="([^"]+tracker\.js)" data-eventlog="[^"]*&quot;pv&quot;: &quot;([0-9a-f]{32})',
                        page.text)
    assert tracker, page.text
    script = requests.get(base + tracker.group(1), timeout=10)
    assert script.status_code == 200 and "sendBeacon" in script.text

    # Step 3: the workers, from the installed package only (with the [worker] extra).
    run([str(py), "-m", "pip", "install", "-q", f"{wheel}[worker]", *constraints], outside, env)
    worker_log = outside / "worker.log"
    procs.append(spawn("worker", [str(bin_dir / "celery"), "-A", "tasks", "worker", "-Q",
                                  "eventlog.enrich,eventlog.store", "-c", "1", "--without-gossip", "--without-mingle",
                                  "-n", "newsite@%h"], outside, env, worker_log))
    db = mongo.client[db_name]
    try:
        stored = wait_until(lambda: db.website_logs.find_one({"_id": tracker.group(2)}), 90, "the page view stored")
        assert stored["path_info"] == "/" and stored["status_code"] == 200 and stored["event_name"]
        where = run([str(py), "-c", "import tasks, pipeline; print(tasks.__file__, pipeline.__file__)"], outside, env)
        assert where.count(str(venv)) == 2, where

        # The dashboard, for a staff user (logged in through the admin, the site's only login page).
        browser = requests.Session()
        browser.get(f"{base}/admin/login/", timeout=10)
        login = browser.post(f"{base}/admin/login/?next=/admin/", timeout=10, data={
            "username": "staff", "password": PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
        assert login.status_code == 200 and "Log out" in login.text
        dashboard = browser.get(f"{base}/eventlog/dashboard/", timeout=30)
        assert dashboard.status_code == 200 and "eventlog" in dashboard.text and 'data-chart="' in dashboard.text
        assert requests.get(f"{base}/eventlog/dashboard/", timeout=10, allow_redirects=False).status_code == 302

        # The operator script of the package.
        status = subprocess.run([str(bin_dir / "eventlog"), "status"], cwd=outside, env=env, capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0 and "status          ok" in status.stdout, status.stdout + status.stderr
        assert re.search(r"events stored   [1-9]", status.stdout), status.stdout
        stack = subprocess.run([str(bin_dir / "eventlog"), "stack", "up"], cwd=outside, env=env,
                               capture_output=True, text=True, timeout=60)
        assert stack.returncode == 1 and "part of the eventlog repository" in stack.stderr
    except BaseException:
        print(worker_log.read_text(errors="replace")[-4000:], (outside / "site.log").read_text()[-4000:])
        raise
    finally:
        mongo.client.drop_database(db_name)
