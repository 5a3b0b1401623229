"""The hook's added time per request, measured on Django's WSGI handler in-process.

Two WSGI handlers over the same trivial view (loadtest.hook_site) and the demo
site's middleware stack, one with django_hook.middleware.EventLogMiddleware
first (outermost, where the README and the demo put it), one without.
``--position innermost`` appends it instead, as earlier versions of this
benchmark did (there the hook's session peek makes SessionMiddleware add
Vary: Cookie to every response, which costs time the outermost hook does not).
Requests alternate between the handlers (the order rotating each round) so
that a noisy machine slows both alike. The hook spools to a temporary directory and its shipper publishes to a
real broker in the background, as in production. Two visitor kinds: returning
(has the visitor cookie) and first visit (the hook also sets a cookie).

The interleaved measurement is repeated --runs times in one process (after one
warm-up) because on a shared machine a single run's figures move by tens of
microseconds with the other load; each run records the cores other processes used
meanwhile. A table gives min / median / max over the runs.

    python -m loadtest.hook --requests 20000 --runs 5 --broker redis://127.0.0.1:6379/12 --spool-dir /tmp/x

The last line on stdout is a JSON summary (microseconds): per visitor the median
over the runs of each figure (the keys of a single run, so older readers keep
working), "spread" with min / median / max of each figure, and "per_run".
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from typing import Any

from loadtest.common import USER_AGENTS, machine_cpu_delta, machine_cpu_snapshot, percentile, round_or_none

BASE_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
HOOK = "django_hook.middleware.EventLogMiddleware"
VISITORS = ("returning", "first_visit")
FIGURES = ("without_p50_us", "with_p50_us", "added_p50_us", "without_p99_us", "with_p99_us", "added_p99_us",
           "paired_diff_p50_us")


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


Key = tuple[str, str]
Variant = tuple[Any, dict[str, Any]]


def _one_run(variants: dict[Key, Variant], requests: int, deadline: float) -> dict[Key, list[float]]:
    """One interleaved measurement: every round calls each variant once, the order rotating."""
    keys = list(variants)
    samples: dict[Key, list[float]] = {key: [] for key in keys}
    for i in range(requests):
        if time.monotonic() > deadline:
            break
        shift = i % len(keys)
        for key in keys[shift:] + keys[:shift]:
            samples[key].append(_call(*variants[key]) / 1000.0)
    return samples


def _run_stats(samples: dict[Key, list[float]]) -> dict[str, dict[str, float | None]]:
    """A run's figures per visitor: percentiles without / with the hook and their difference."""
    out: dict[str, dict[str, float | None]] = {}
    for visitor in VISITORS:
        off, on = samples[(visitor, "without")], samples[(visitor, "with")]
        stats = {
            "without_p50_us": round_or_none(percentile(off, 50), 1),
            "without_p99_us": round_or_none(percentile(off, 99), 1),
            "with_p50_us": round_or_none(percentile(on, 50), 1),
            "with_p99_us": round_or_none(percentile(on, 99), 1),
        }
        for q in ("p50", "p99"):
            w, wo = stats[f"with_{q}_us"], stats[f"without_{q}_us"]
            stats[f"added_{q}_us"] = None if w is None or wo is None else round(w - wo, 1)
        paired = [b - a for a, b in zip(off, on, strict=True)]  # same round, same machine state
        stats["paired_diff_p50_us"] = round_or_none(percentile(paired, 50), 1)
        out[visitor] = stats
    return out


def _spread(values: list[float | None]) -> dict[str, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return {"min": None, "median": None, "max": None}
    return {"min": min(present), "median": round(statistics.median(present), 1), "max": max(present)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    _configure(args)
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    settings.MIDDLEWARE = BASE_MIDDLEWARE
    without = WSGIHandler()
    settings.MIDDLEWARE = [HOOK, *BASE_MIDDLEWARE] if args.position == "outermost" else [*BASE_MIDDLEWARE, HOOK]
    with_hook = WSGIHandler()  # starts the spool and its shipper, as a web process would

    from django_hook import handoff

    # What the shipper imports on its first shipment in a fresh web process, done
    # here before timing (a long-running process has paid it); time and memory kept.
    rss0, t0 = _rss_mb(), time.perf_counter()
    import tasks.publish  # noqa: F401

    cold = {"publish_import_s": round(time.perf_counter() - t0, 3), "publish_import_rss_mb": round(_rss_mb() - rss0, 1)}

    variants: dict[Key, Variant] = {
        ("returning", "without"): (without, _environ(cookie=True)),
        ("returning", "with"): (with_hook, _environ(cookie=True)),
        ("first_visit", "without"): (without, _environ(cookie=False)),
        ("first_visit", "with"): (with_hook, _environ(cookie=False)),
    }
    for key in variants:  # warm up: imports, URL resolver and ua caches, first broker connection
        for _ in range(args.warmup):
            _call(*variants[key])
    deadline = time.monotonic() + args.max_seconds
    per_run: list[dict[str, Any]] = []
    timed = 0
    for _ in range(args.runs):
        if time.monotonic() > deadline:
            break
        machine0, started = machine_cpu_snapshot(), time.monotonic()
        samples = _one_run(variants, args.requests, deadline)
        seconds = time.monotonic() - started
        # Cores other processes used meanwhile: what explains a slow run on a shared machine.
        other = machine_cpu_delta(machine0, machine_cpu_snapshot(), {os.getpid()})["other_cores"]
        count = len(samples[("returning", "with")])
        timed += count
        per_run.append({"requests_per_variant": count, "seconds": round(seconds, 1), "other_cores": other,
                        **_run_stats(samples)})
    shipper = handoff.shipper()
    drained = shipper.drain(15.0) if shipper is not None else False

    result: dict[str, Any] = {
        "requests_per_variant": min((r["requests_per_variant"] for r in per_run), default=0),  # per run
        "runs": len(per_run),
        "warmup": args.warmup,
        "position": args.position,
    }
    for visitor in VISITORS:
        spread = {fig: _spread([r[visitor][fig] for r in per_run]) for fig in FIGURES}
        result[visitor] = {fig: spread[fig]["median"] for fig in FIGURES}
        result[visitor]["spread"] = spread
    result["other_cores"] = _spread([r["other_cores"] for r in per_run])
    result["per_run"] = per_run
    result["cpu_seconds"] = round(time.process_time(), 2)
    result["cold_start"] = cold
    result["process_rss_mb"] = round(_rss_mb(), 1)
    result["events_shipped"] = shipper.shipped if shipper is not None else 0
    result["events_expected"] = 2 * (timed + args.warmup)  # hooked requests: two visitor kinds
    result["spool_drained"] = drained
    result["shipper_failures"] = shipper.failures if shipper is not None else None
    return result


def _fmt_spread(spread: dict[str, float | None]) -> str:
    if spread["median"] is None:
        return "-"
    return f"{spread['min']:.1f} / {spread['median']:.1f} / {spread['max']:.1f}"


def format_table(result: dict[str, Any]) -> str:
    """The added time per visitor kind, min / median / max over the runs, as aligned text."""
    head = (f"{'visitor':<12} {'without p50':>11} {'added p50 (min / median / max)':>31} "
            f"{'added p99 (min / median / max)':>31} {'paired p50':>10}")
    lines = [
        f"Hook ({result['position']}) added time per request, microseconds: {result['runs']} runs of "
        f"{result['requests_per_variant']} requests per variant (interleaved), min / median / max over the runs",
        head,
        "-" * len(head),
    ]
    for visitor in VISITORS:
        s = result[visitor]
        without = "-" if s["without_p50_us"] is None else f"{s['without_p50_us']:.1f}"
        paired = "-" if s["paired_diff_p50_us"] is None else f"{s['paired_diff_p50_us']:.1f}"
        lines.append(f"{visitor:<12} {without:>11} {_fmt_spread(s['spread']['added_p50_us']):>31} "
                     f"{_fmt_spread(s['spread']['added_p99_us']):>31} {paired:>10}")
    other = result["other_cores"]
    lines.append(f"(without p50 and paired p50: medians over the runs; other processes used "
                 f"{_fmt_spread(other)} cores of {os.cpu_count()} during the runs)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="timed requests per variant and run")
    parser.add_argument("--runs", type=int, default=5, help="interleaved measurements, for the spread")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--position", choices=["outermost", "innermost"], default="outermost",
                        help="where the hook goes in the middleware list (the README: outermost)")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--spool-dir", required=True)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound on all runs together")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    result = measure(args)
    print(format_table(result), flush=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
