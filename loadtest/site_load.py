"""Load generator of benchmark (d) (loadtest.site_bench): a real site's traffic over HTTP.

    python -m loadtest.site_load --base-url http://127.0.0.1:PORT --mode paced --rate 40 --seconds 20 \\
        --step s3 --out /tmp/s3.json [--learners cookies.json] [--no-beacons] [--seed 7]
    python -m loadtest.site_load --base-url http://127.0.0.1:PORT --mode closed --concurrency 16 \\
        --seconds 10 --step c1 --out /tmp/c1.json

It runs in a process of its own (aiohttp, one event loop), only against 127.0.0.1.

paced (open loop): page view k is sent at t0 + k/rate whatever became of the earlier
ones, so a slow site or pipeline shows up as latency and lag, never as a lower offered
rate. A send the generator itself could not make on time is measured (``late_*``):
then the machine, not the site, set the pace. Latency is taken from the scheduled time.
closed: ``concurrency`` visitors, each sending its next page view once the previous
one (and its beacons) were answered, as fast as possible.

The page mix is the demo traffic's (loadtest.traffic): visits that arrive from search
engines and other sites and click through the home page, the tutorial search and
(mostly) watch pages, stale links that end in 404, crawlers, returning visitors (with
their eventlog_vid cookie), logged-in learners (session cookies from the benchmark's
own logins: no logins or form posts during a run). Most human visitors run tracker.js:
when a page has loaded the browser POSTs its ``pageview`` event to collect/, and when
the visitor leaves, ``visit_end`` with the engaged time (and, on the last page of some
visits, an ``exit``). Engaged time is drawn, not waited for: the goodbye comes 0.5-4 s
after the page.

Every page view carries a tag, ``sbt=<step>-<seq>``, in its Referer (the middleware
records the Referer, not the query string; the benchmark counts stored documents per
tag) and in its query string (for the access log). A visit that would come without a
Referer (typed, bookmarked, a crawler) gets the site's home page as Referer.
The output is one JSON file: every request's record and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loadtest.agents import COUNTRIES, Country, IpPool, device_class, human_user_agent, ip_pool, pick_bot
from loadtest.common import new_event_id, percentile, round_or_none
from loadtest.tracker_beacons import (
    COLLECT_PATH,
    EXIT_SHARE,
    JS_SHARE,
    SCREENS,
    TrackedPage,
    engaged_ms,
    read_page,
)
from loadtest.traffic import (
    BOT_SHARE,
    EXTERNAL_REFERRERS,
    RETURNING_POOL_MAX,
    RETURNING_SHARE,
    Place,
    crawl_paths,
    journey_length,
    move,
)

TAG_PARAM = "sbt"
_TAG = re.compile(rf"{TAG_PARAM}=([A-Za-z0-9]+-\d+)")
REQUEST_TIMEOUT = 30.0  # seconds: an answer later than this counts as none
MAX_INFLIGHT = 1024  # open connections; more wait in the client (their latency counts from the schedule)
ACTIVE_VISITS = 64  # visits in progress at any time: each page view advances one of them
LEARNER_SHARE = 0.10  # of visits, when learners' session cookies were given
LOAD_DELAY = (0.05, 0.4)  # s from the answer to the tracker's pageview (parse, deferred script)
STAY = (0.5, 4.0)  # s from the pageview to the goodbye (compressed: engaged time is drawn)
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def make_tag(step: str, seq: int) -> str:
    return f"{step}-{seq:06d}"


def with_tag(url: str, tag: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{TAG_PARAM}={tag}"


def parse_tag(referrer: str | None) -> str | None:
    """The page view's tag in a stored Referer (the last one, should there be two)."""
    found = _TAG.findall(referrer or "")
    return found[-1] if found else None


# ---------------------------------------------------------------- who visits, and where


@dataclass
class Browser:
    """One visitor's browser (or a crawler): what it sends with every request."""

    user_agent: str
    forwarded_for: str
    accept_language: str
    timezone: str
    country: Country | None  # loadtest.traffic.move reads its language preferences
    bot: bool = False
    js: bool = False
    cookies: dict[str, str] = field(default_factory=dict)
    place: Place | None = None
    pages_left: int = 0
    last_path: str | None = None
    crawl: list[str] = field(default_factory=list)

    def cookie_header(self) -> dict[str, str]:
        if self.bot or not self.cookies:  # crawlers keep no cookies: always first-time
            return {}
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}


@dataclass
class View:
    """One page view to send, drawn in advance (open loop: independent of the answers)."""

    browser: Browser
    path: str
    referrer: str
    last: bool  # the last page of its visit: the visit may end on an exit link
    load_delay: float
    stay: float
    engaged_ms: int
    exit_pick: int | None  # which external link is followed, if one is


class Mix:
    """The demo traffic's page mix, one page view at a time."""

    def __init__(self, base_url: str, rng: random.Random, ips: IpPool,
                 learners: list[dict[str, str]] | None = None, active: int = ACTIVE_VISITS) -> None:
        self.base_url = base_url
        self.rng = rng
        self.ips = ips
        self.countries = ips.countries() or list(COUNTRIES)
        self.active: list[Browser] = []
        self.target_active = active
        self.returning: list[Browser] = []
        self.learners = [self._human(cookies=dict(c)) for c in learners or []]
        self.idle_learners = list(range(len(self.learners)))
        self._learner_of: dict[int, int] = {}

    def _human(self, cookies: dict[str, str] | None = None) -> Browser:
        rng = self.rng
        country = rng.choices(self.countries, weights=[c.weight for c in self.countries])[0]
        ip = rng.choice(self.ips.by_country.get(country.code) or ["81.2.69.142"])
        return Browser(human_user_agent(rng), ip, country.accept_language, country.timezone, country,
                       js=rng.random() < JS_SHARE, cookies=cookies or {})

    def _bot(self) -> Browser:
        bot = pick_bot(self.rng)
        browser = Browser(bot.user_agent, self.rng.choice(self.ips.bots[bot.operator]), "en", "UTC", None, bot=True)
        paths = list(crawl_paths(self.rng))
        start = self.rng.randrange(len(paths))
        browser.crawl = paths[start: start + self.rng.randint(3, 10)]
        return browser

    def _start_visit(self) -> Browser:
        rng = self.rng
        roll = rng.random()
        if roll < BOT_SHARE:
            browser = self._bot()
            browser.pages_left = len(browser.crawl)
            return browser
        if roll < BOT_SHARE + LEARNER_SHARE and self.idle_learners:
            index = self.idle_learners.pop(rng.randrange(len(self.idle_learners)))
            browser = self.learners[index]
            self._learner_of[id(browser)] = index
        elif self.returning and rng.random() < RETURNING_SHARE:
            browser = self.returning.pop(rng.randrange(len(self.returning)))
        else:
            browser = self._human()
        browser.place, browser.last_path = None, None
        browser.pages_left = journey_length(rng)
        return browser

    def _end_visit(self, browser: Browser) -> None:
        self.active.remove(browser)
        if browser.bot:
            return
        if id(browser) in self._learner_of:
            self.idle_learners.append(self._learner_of.pop(id(browser)))
        elif len(self.returning) < RETURNING_POOL_MAX:
            self.returning.append(browser)

    def _next_page(self, browser: Browser) -> tuple[str, str]:
        """(path, referrer) of the browser's next click."""
        home = self.base_url + "/"
        if browser.bot:
            return browser.crawl.pop(0), home
        entry = browser.place is None
        browser.place = move(browser.place, browser, self.rng)
        path = browser.place.path(self.rng)
        if entry:
            external = self.rng.choices([r for r, _ in EXTERNAL_REFERRERS],
                                        weights=[w for _, w in EXTERNAL_REFERRERS])[0]
            referrer = external or home
        else:
            referrer = self.base_url + (browser.last_path or "/")
        browser.last_path = path
        return path, referrer

    def next_view(self) -> View:
        if len(self.active) < self.target_active:
            browser = self._start_visit()
            self.active.append(browser)
        else:
            browser = self.rng.choice(self.active)
        path, referrer = self._next_page(browser)
        browser.pages_left -= 1
        last = browser.pages_left <= 0
        if last:
            self._end_visit(browser)
        rng = self.rng
        engaged = engaged_ms(TrackedPage("", path, "", "", ()), rng)
        exit_pick = rng.randrange(1000) if last and rng.random() < EXIT_SHARE else None
        return View(browser, path, referrer, last, rng.uniform(*LOAD_DELAY), rng.uniform(*STAY), engaged, exit_pick)


# ---------------------------------------------------------------- HTTP


def _headers(browser: Browser, referrer: str | None = None) -> dict[str, str]:
    headers = {"User-Agent": browser.user_agent, "Accept": ACCEPT, "Accept-Language": browser.accept_language,
               "X-Forwarded-For": browser.forwarded_for, **browser.cookie_header()}
    if referrer:
        headers["Referer"] = referrer
    return headers


def _keep_cookies(browser: Browser, response: Any) -> None:
    for hop in (*response.history, response):
        for name, morsel in hop.cookies.items():
            browser.cookies[name] = morsel.value


def _event(kind: str, page: TrackedPage, **fields: object) -> dict[str, object]:
    """An event as tracker.js sends it (the same fields as loadtest.tracker_beacons)."""
    return {"kind": kind, "event_id": new_event_id(), "page_view_id": page.page_view_id, "path": page.path,
            "ts": int(time.time() * 1000), **fields}


def pageview_event(view: View, page: TrackedPage) -> dict[str, object]:
    screen, viewport = SCREENS[device_class(view.browser.user_agent)]
    return _event("pageview", page, title=page.title, referrer=page.referrer, screen_width=screen[0],
                  screen_height=screen[1], viewport_width=viewport[0], viewport_height=viewport[1],
                  language=view.browser.accept_language.split(",")[0], timezone=view.browser.timezone)


def goodbye_events(view: View, page: TrackedPage) -> list[dict[str, object]]:
    events = [_event("visit_end", page, duration_ms=view.engaged_ms, title=page.title, referrer=page.referrer)]
    if view.exit_pick is not None and page.external_links:
        url = page.external_links[view.exit_pick % len(page.external_links)]
        events.insert(0, _event("exit", page, url=url))
    return events


class Client:
    """Sends page views and beacons, and keeps a record of every request."""

    def __init__(self, session: Any, base_url: str, step: str, beacons: bool, pause: bool) -> None:
        self.session = session
        self.base_url = base_url
        self.step = step
        self.beacons = beacons
        self.pause = pause  # paced: the browser's load and stay delays; closed: none
        self.records: list[dict[str, Any]] = []
        self.seq = 0

    async def page(self, view: View, sched: float) -> None:
        import aiohttp

        tag = make_tag(self.step, self.seq)
        self.seq += 1
        referrer = with_tag(view.referrer, tag)
        record: dict[str, Any] = {"k": "page", "tag": tag, "sched": sched, "sent": time.time(), "path": view.path,
                                  "js": view.browser.js, "status": 0, "hops": 0, "pv": None}
        self.records.append(record)
        try:
            async with self.session.get(self.base_url + with_tag(view.path, tag),
                                        headers=_headers(view.browser, referrer)) as answer:
                body = await answer.read()
                record.update(status=answer.status, hops=len(answer.history) + 1)
                _keep_cookies(view.browser, answer)
                response = SimpleNamespace(headers=answer.headers, url=str(answer.url),
                                           text=body.decode("utf-8", "replace") if view.browser.js else "")
        except (TimeoutError, aiohttp.ClientError) as exc:
            record["error"] = type(exc).__name__
            return
        finally:
            record["done"] = time.time()
        page = read_page(response, referrer) if view.browser.js else None
        if page is None:
            return
        record["pv"] = page.page_view_id
        if self.beacons:
            await self._tracker(view, page, tag)

    async def _tracker(self, view: View, page: TrackedPage, tag: str) -> None:
        if self.pause:
            await asyncio.sleep(view.load_delay)
        await self.beacon(view, tag, [pageview_event(view, page)])
        if self.pause:
            await asyncio.sleep(view.stay)
        await self.beacon(view, tag, goodbye_events(view, page))

    async def beacon(self, view: View, tag: str, events: list[dict[str, object]]) -> None:
        import aiohttp

        record: dict[str, Any] = {"k": "beacon", "tag": tag, "sent": time.time(), "status": 0,
                                  "kinds": [e["kind"] for e in events], "pv": events[0]["page_view_id"],
                                  "exit_id": next((e["event_id"] for e in events if e["kind"] == "exit"), None)}
        self.records.append(record)
        headers = {**_headers(view.browser), "Content-Type": "text/plain;charset=UTF-8", "Origin": self.base_url}
        try:
            async with self.session.post(self.base_url + COLLECT_PATH, data=json.dumps({"events": events}),
                                         headers=headers) as answer:
                await answer.read()
                record["status"] = answer.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            record["error"] = type(exc).__name__
        finally:
            record["done"] = time.time()


def _session() -> Any:
    import aiohttp

    # gunicorn's sync workers close every connection after answering; cookies are per browser.
    connector = aiohttp.TCPConnector(limit=MAX_INFLIGHT, force_close=True)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))


async def run_paced(base_url: str, step: str, rate: float, seconds: float, mix: Mix, beacons: bool) -> Client:
    """Open loop: page view k at t0 + k/rate, launched whether or not earlier ones were answered."""
    count = max(1, round(rate * seconds))
    async with _session() as session:
        client = Client(session, base_url, step, beacons, pause=True)
        tasks = []
        t0 = time.time() + 0.2
        for k in range(count):
            sched = t0 + k / rate
            delay = sched - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(client.page(mix.next_view(), sched)))
        await asyncio.gather(*tasks)
    return client


async def run_closed(base_url: str, step: str, concurrency: int, seconds: float, mix: Mix, beacons: bool) -> Client:
    """Closed loop: each visitor's next page view once the previous one was answered."""
    async with _session() as session:
        client = Client(session, base_url, step, beacons, pause=False)
        deadline = time.time() + seconds

        async def visitor() -> None:
            while time.time() < deadline:
                await client.page(mix.next_view(), time.time())

        await asyncio.gather(*(visitor() for _ in range(concurrency)))
    return client


# ---------------------------------------------------------------- summary


def _ms(values: list[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value * 1000, 1)


def summarize_load(records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Counts and latencies of one run, from its records (no timing of its own)."""
    pages = [r for r in records if r["k"] == "page"]
    beacons = [r for r in records if r["k"] == "beacon"]
    answered = [r for r in pages if r["status"]]
    answered_beacons = [r for r in beacons if r["status"]]
    sent = [r["sent"] for r in records]
    wall = max(1e-6, (max(r.get("done", r["sent"]) for r in records) - min(sent)) if records else seconds)
    late = [max(0.0, r["sent"] - r["sched"]) for r in pages]
    return {
        "page_views": len(pages),
        "page_views_answered": len(answered),
        "beacon_posts": len(beacons),
        "beacon_posts_answered": len(answered_beacons),
        "statuses": dict(Counter(str(r["status"]) for r in pages).most_common()),
        "beacon_statuses": dict(Counter(str(r["status"]) for r in beacons).most_common()),
        "errors": dict(Counter(r["error"] for r in records if "error" in r).most_common()),
        "seconds": round(seconds, 2),
        "wall_s": round(wall, 2),
        "page_views_per_s": round(len(answered) / seconds, 1) if seconds else None,
        "requests_per_s": round((len(answered) + len(answered_beacons)) / seconds, 1) if seconds else None,
        "latency_p50_ms": _ms([r["done"] - r["sched"] for r in answered], 50),
        "latency_p99_ms": _ms([r["done"] - r["sched"] for r in answered], 99),
        "beacon_latency_p50_ms": _ms([r["done"] - r["sent"] for r in answered_beacons], 50),
        "beacon_latency_p99_ms": _ms([r["done"] - r["sent"] for r in answered_beacons], 99),
        "late_p50_s": round_or_none(percentile(late, 50)),
        "late_p99_s": round_or_none(percentile(late, 99)),
        "late_max_s": round_or_none(max(late) if late else None),
    }


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--mode", choices=["paced", "closed"], required=True)
    parser.add_argument("--rate", type=float, default=10.0, help="paced: page views/s")
    parser.add_argument("--concurrency", type=int, default=16, help="closed: visitors at once")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--step", required=True, help="tag prefix: letters and digits")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--learners", help="JSON file: a list of cookie dicts of logged-in learners")
    parser.add_argument("--mmdb", help="GeoIP City database the client IPs are checked against")
    parser.add_argument("--no-beacons", action="store_true", help="page views only (no tracker.js)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not args.base_url.startswith("http://127.0.0.1:"):
        parser.error("the load generator only targets http://127.0.0.1:<port>")
    if not re.fullmatch(r"[A-Za-z0-9]+", args.step):
        parser.error("--step: letters and digits only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    learners = json.loads(Path(args.learners).read_text()) if args.learners else []
    mix = Mix(args.base_url.rstrip("/"), rng, ip_pool(args.mmdb, rng), learners)
    began = time.time()
    if args.mode == "paced":
        run = run_paced(mix.base_url, args.step, args.rate, args.seconds, mix, not args.no_beacons)
    else:
        run = run_closed(mix.base_url, args.step, args.concurrency, args.seconds, mix, not args.no_beacons)
    client = asyncio.run(run)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary = summarize_load(client.records, args.seconds)
    summary.update(mode=args.mode, step=args.step, rate=args.rate if args.mode == "paced" else None,
                   concurrency=args.concurrency if args.mode == "closed" else None, started=began,
                   beacons=not args.no_beacons, cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2))
    Path(args.out).write_text(json.dumps({"summary": summary, "records": client.records}))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
