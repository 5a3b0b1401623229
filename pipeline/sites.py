"""Which site (or subdomain) an event belongs to: the ``site`` field of every event.

A site is named by its host, normalised (lower case, no trailing dot, no default port),
unless EVENTLOG_SITES gives the host a name ("forums.example.org=forums"). The
middleware calls this on the request path, so results are cached per host.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

MAX_SITE = 255
DEFAULT_PORTS = {"http": "80", "https": "443"}


def parse_sites(pairs: Iterable[str]) -> dict[str, str]:
    """EVENTLOG_SITES entries ("host[:port]=name") as {normalised host: name}.

    Raises ValueError naming the entry an operator got wrong.
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        host, sep, name = pair.partition("=")
        if not sep or not host.strip() or not name.strip():
            raise ValueError(f"EVENTLOG_SITES entry {pair!r} is not 'host=name'")
        mapping[normalise_host(host.strip())] = name.strip()[:MAX_SITE]
    return mapping


def _split(host: str) -> tuple[str, str]:
    """(name, port) of "host[:port]"; port "" when there is none (a bare IPv6 address has none)."""
    host = host.strip().lower()
    name, sep, port = host.rpartition(":")
    if not sep or "]" in port or not port.isdigit():
        return host.rstrip("."), ""
    return name.rstrip("."), port


def normalise_host(host: str, scheme: str = "") -> str:
    """``host[:port]`` in lower case, without a trailing dot or the scheme's default port.

    Another port is kept: two sites on one host name differ by port (a test site, a dev server).
    """
    name, port = _split(host)
    if port and port != DEFAULT_PORTS.get(scheme, ""):
        return f"{name}:{port}"[:MAX_SITE]
    return name[:MAX_SITE]


@lru_cache(maxsize=256)
def _cached(host: str, scheme: str, sites: tuple[str, ...]) -> str:
    normal = normalise_host(host, scheme)
    mapping = parse_sites(sites)
    # "host:port" first, then the bare host name, so one entry can cover every port.
    return mapping.get(normal) or mapping.get(_split(normal)[0]) or normal


def site_name(host: str, sites: tuple[str, ...] = (), scheme: str = "") -> str | None:
    """The ``site`` of an event made on ``host`` (None when the request named no host)."""
    if not host:
        return None
    return _cached(host[:MAX_SITE + 8], scheme, sites)


def origin_host(origin: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an Origin header value, or None for "null" and junk."""
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in DEFAULT_PORTS or not rest:
        return None
    return scheme, rest.split("/", 1)[0]
