"""URL path -> event_name.

EVENT_NAME_DICT keeps the original site's patterns (the tutorial site this system
was built for) plus the demo's. Patterns are tried in order; the first match wins.
A path that matches none is still stored, as FALLBACK_EVENT_NAME, so unmapped
pages show up in the analytics instead of vanishing as they did in the original.
"""

from __future__ import annotations

import re
from functools import lru_cache

FALLBACK_EVENT_NAME = "event.other.view"

EVENT_NAME_DICT: dict[str, str] = {
    r"^/$": "event.home.view",
    r"^/watch/(?P<foss>[^/]+)/(?P<tutorial>[^/]+)/(?P<language>[^/]+)/?$": "event.video.watch",
    r"^/tutorial-search/?$": "event.tutorial.search",
    r"^/keyword-search/?$": "event.keyword.search",
    r"^/cdcontent/?$": "event.cdcontent.view",
    r"^/cdcontent/(download|ajax-.*)/?": "event.cdcontent.download",
    r"^/news/": "event.news.view",
    r"^/software-training/": "event.training.view",
    r"^/statistics/": "event.statistics.view",
    r"^/accounts/login/?$": "event.account.login",
    r"^/accounts/logout/?$": "event.account.logout",
    r"^/accounts/register/?$": "event.account.register",
    r"^/(accounts|profile)/": "event.account.view",
    r"^/feedback/?$": "event.feedback",
    r"^/about/": "event.about.view",
    r"^/eventlog/dashboard/": "event.dashboard.view",
}

_COMPILED = tuple((re.compile(p), name) for p, name in EVENT_NAME_DICT.items())


@lru_cache(maxsize=8192)
def event_name_for(path: str) -> str:
    """The event_name of a URL path, or FALLBACK_EVENT_NAME."""
    for pattern, name in _COMPILED:
        if pattern.search(path):
            return name
    return FALLBACK_EVENT_NAME


def tutorial_from_path(path: str) -> dict[str, str] | None:
    """(foss, tutorial, language) of a watch page path, else None."""
    for pattern, name in _COMPILED:
        if name == "event.video.watch":
            match = pattern.search(path)
            return match.groupdict() if match else None
    return None
