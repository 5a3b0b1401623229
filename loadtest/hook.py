"""The hook's added time per request, measured on Django's WSGI handler in-process.

Two WSGI handlers over the same trivial view (loadtest.hook_site) and the demo
site's middleware stack, one with django_hook.middleware.EventLogMiddleware
appended (where the demo puts it), one without. Requests alternate between the
handlers (the order rotating each round) so that a noisy machine slows both
alike. The hook spools to a temporary directory and its shipper publishes to a
real broker in the background, as in production. Two visitor kinds: returning
(has the visitor cookie) and first visit (the hook also sets a cookie).

    python -m loadtest.hook --requests 20000 --broker redis://127.0.0.1:6379/12 --spool-dir /tmp/x

The last line on stdout is a JSON summary (microseconds).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from typing import Any

from loadtest.common import USER_AGENTS, percentile, round_or_none

BASE_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
HOOK = "django_hook.middleware.EventLogMiddleware"


def _configure(args: argparse.Namespace) -> None:
    os.environ["EVENTLOG_BROKER_URL"] = args.broker
    os.environ["EVENTLOG_SPOOL_DIR"] = args.spool_dir
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="loadtest-hook-not-secret",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF="loadtest.hook_site",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_hook",
        ],
        MIDDLEWARE=BASE_MIDDLEWARE,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        USE_TZ=True,
        EVENTLOG_SPOOL_DIR=args.spool_dir,
        EVENTLOG_BROKER_URL=args.broker,
    )
    django.setup()


def _environ(cookie: bool) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/watch/Python/Getting-started/English/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "81.2.69.142",
        "HTTP_USER_AGENT": USER_AGENTS[0],
        "HTTP_REFERER": "https://www.google.com/",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if cookie:
        env["HTTP_COOKIE"] = "eventlog_vid=0123456789abcdef0123456789abcdef"
    return env


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"unexpected response {status}")


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _call(handler: Any, environ: dict[str, Any]) -> int:
    env = dict(environ)
    env["wsgi.input"] = io.BytesIO(b"")
    c0 = time.perf_counter_ns()
    response = handler(env, _start_response)
    for _chunk in response:
        pass
    response.close()
    return time.perf_counter_ns() - c0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    _configure(args)
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    settings.MIDDLEWARE = BASE_MIDDLEWARE
    without = WSGIHandler()
    settings.MIDDLEWARE = [*BASE_MIDDLEWARE, HOOK]
    with_hook = WSGIHandler()  # starts the spool and its shipper, as a web process would

    from django_hook import handoff

    # What the shipper imports on its first shipment in a fresh web process, done
    # here before timing (a long-running process has paid it); time and memory kept.
    rss0, t0 = _rss_mb(), time.perf_counter()
    import tasks.publish  # noqa: F401

    cold = {"publish_import_s": round(time.perf_counter() - t0, 3), "publish_import_rss_mb": round(_rss_mb() - rss0, 1)}

    variants = {
        ("returning", "without"): (without, _environ(cookie=True)),
        ("returning", "with"): (with_hook, _environ(cookie=True)),
        ("first_visit", "without"): (without, _environ(cookie=False)),
        ("first_visit", "with"): (with_hook, _environ(cookie=False)),
    }
    keys = list(variants)
    for key in keys:  # warm up: imports, URL resolver and ua caches, first broker connection
        for _ in range(args.warmup):
            _call(*variants[key])
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    deadline = time.monotonic() + args.max_seconds
    for i in range(args.requests):
        if time.monotonic() > deadline:
            break
        shift = i % len(keys)
        for key in keys[shift:] + keys[:shift]:
            samples[key].append(_call(*variants[key]) / 1000.0)
    shipper = handoff.shipper()
    drained = shipper.drain(15.0) if shipper is not None else False
    hooked_requests = (len(samples[("returning", "with")]) + len(samples[("first_visit", "with")])
                       + 2 * args.warmup)

    result: dict[str, Any] = {"requests_per_variant": len(samples[keys[0]]), "warmup": args.warmup}
    for visitor in ("returning", "first_visit"):
        off, on = samples[(visitor, "without")], samples[(visitor, "with")]
        paired = [b - a for a, b in zip(off, on, strict=True)]
        stats = {
            "without_p50_us": round_or_none(percentile(off, 50), 1),
            "without_p99_us": round_or_none(percentile(off, 99), 1),
            "with_p50_us": round_or_none(percentile(on, 50), 1),
            "with_p99_us": round_or_none(percentile(on, 99), 1),
        }
        stats["added_p50_us"] = round_or_none(stats["with_p50_us"] - stats["without_p50_us"], 1)
        stats["added_p99_us"] = round_or_none(stats["with_p99_us"] - stats["without_p99_us"], 1)
        stats["paired_diff_p50_us"] = round_or_none(percentile(paired, 50), 1)
        result[visitor] = stats
    result["cpu_seconds"] = round(time.process_time(), 2)
    result["cold_start"] = cold
    result["process_rss_mb"] = round(_rss_mb(), 1)
    result["events_shipped"] = shipper.shipped if shipper is not None else 0
    result["events_expected"] = hooked_requests
    result["spool_drained"] = drained
    result["shipper_failures"] = shipper.failures if shipper is not None else None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="timed requests per variant")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--spool-dir", required=True)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
