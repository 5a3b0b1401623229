"""Visits for dashboard tests: generated page views reshaped into journeys through the demo site.

loadtest.dashboard_bench.generate_events draws the pages of a visit at random, so
hardly two visits take the same path; the user paths panel ranks common flows.
:func:`as_journeys` keeps each document's fields (country, browser, ...) and
regroups the people's page views into visits that follow clicks a learner would
make (home -> search -> a tutorial -> the next tutorial ...): one visitor, a few
minutes apart, a campaign's utm_* on some landing pages.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from demo.catalogue import CATALOGUE, slug

IDENTITY = ("visitor_id", "visited_by", "ip_address", "country", "country_code", "region", "city", "latitude",
            "longitude", "browser_family", "browser_version", "os_family", "os_version", "device_family",
            "device_type", "referrer")
CAMPAIGNS = ({"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "december-courses"},
             {"utm_source": "facebook", "utm_medium": "social", "utm_campaign": "bash-week"},
             {"utm_source": "partner-college"})
CAMPAIGN_SHARE = 0.15
UTM = ("utm_source", "utm_medium", "utm_campaign")
ENTRY = {"home": 40, "search": 25, "watch": 30, "cdcontent": 5}
NEXT = {"home": {"search": 60, "watch": 25, "cdcontent": 15}, "search": {"watch": 80, "home": 20},
        "watch": {"next": 55, "search": 30, "home": 15}, "cdcontent": {"home": 60, "search": 40}}
PAGES = {"home": ("/", "event.home", "Home | eventlog demo"),
         "search": ("/tutorial-search/", "event.tutorial.search", "Tutorials | eventlog demo"),
         "cdcontent": ("/cdcontent/", "event.cdcontent", "CD content | eventlog demo")}


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _page(kind: str, foss: str, index: int, language: str) -> dict[str, Any]:
    if kind != "watch":
        path, name, title = PAGES[kind]
        return {"path_info": path, "event_name": name, "page_title": title, "view_kwargs": {}}
    tutorial = CATALOGUE[foss]["tutorials"][index]
    return {"path_info": f"/watch/{foss}/{slug(tutorial)}/{language}/", "event_name": "event.video.watch",
            "page_title": f"{tutorial} | eventlog demo",
            "view_kwargs": {"foss": foss, "tutorial": slug(tutorial), "language": language}}


def _journey(rng: random.Random, length: int) -> list[dict[str, Any]]:
    """The pages of one visit: BASH or Python, English, the first tutorials most often."""
    foss = rng.choice(("BASH", "Python"))
    count = len(CATALOGUE[foss]["tutorials"])
    index = min(count - 1, int(rng.expovariate(0.6)))
    kind = _pick(rng, ENTRY)
    pages = []
    for _ in range(length):
        pages.append(_page(kind, foss, index, "English"))
        step = _pick(rng, NEXT[kind])
        if step == "next":
            index, step = (index + 1) % count, "watch"
        elif step == "watch":
            index = min(count - 1, int(rng.expovariate(0.6)))
        kind = step
    return pages


def as_journeys(events: Iterable[dict[str, Any]], end: datetime, seed: int = 3) -> list[dict[str, Any]]:
    """The same documents, the people's page views regrouped into visits ending no later than ``end``."""
    rng = random.Random(seed)
    docs = [dict(e) for e in events]
    people = [d for d in docs if not d.get("is_bot")]
    i = 0
    while i < len(people):
        length = min(8, 1 + int(rng.expovariate(1 / 2.5)), len(people) - i)
        group, first = people[i:i + length], people[i]
        landing = first["datetime"]
        start = min(landing, end - timedelta(minutes=40))  # the whole visit happened before ``end``
        campaign = rng.choice(CAMPAIGNS) if rng.random() < CAMPAIGN_SHARE else {}
        when = start
        for n, (doc, page) in enumerate(zip(group, _journey(rng, length), strict=True)):
            doc.update({k: first.get(k) for k in IDENTITY}, **page)
            for field in UTM:  # the generator's own campaigns belonged to its own visits
                doc.pop(field, None)
            doc["datetime"] = when
            doc["stored_at"] = when + timedelta(seconds=1)
            doc["first_time_visit"] = n == 0 and bool(first.get("first_time_visit"))
            if n == 0:
                doc.update(campaign)
            else:
                doc["referrer"] = "http://127.0.0.1:8000" + group[n - 1]["path_info"]
            when += timedelta(seconds=rng.randint(20, 300))
        i += length
    return docs
