"""User agent -> browser, OS, device, device_type, with a per-process cache.

Parsing is done by the ``user-agents`` library (ua-parser's regexes underneath),
the same one django-user-agents uses. A site sees few distinct user agents
compared with requests, so an LRU cache makes the regex work rare.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import user_agents


def _device_type(ua: user_agents.parsers.UserAgent) -> str:
    if ua.is_bot:
        return "Bot"
    if ua.is_tablet:
        return "Tablet"
    if ua.is_mobile:
        return "Mobile"
    if ua.is_pc:
        return "PC"
    return "Other"


@lru_cache(maxsize=16_384)
def parse_user_agent(user_agent: str) -> dict[str, Any]:
    """Browser/OS/device fields of website_logs for a raw User-Agent header."""
    ua = user_agents.parse(user_agent)
    device_type = _device_type(ua)
    return {
        "browser_family": ua.browser.family,
        "browser_version": ua.browser.version_string,
        "os_family": ua.os.family,
        "os_version": ua.os.version_string,
        "device_family": ua.device.family,
        "device_type": device_type,
        "is_bot": device_type == "Bot",
    }
