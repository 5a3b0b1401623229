"""Secrets out of URLs and routes before an event is written anywhere.

- ``redact_url``: a stored URL (referrer, exit link) keeps its scheme, host, path and
  parameters, in order and spelled as they came; the value of every query (or fragment)
  parameter whose name is secret (pipeline/redact_names.py) becomes REDACTED, and so does
  the password of a ``user:password@`` part.
- ``redact_route``: the path and view arguments of a request. Keyword arguments whose names
  are secret (token, uidb64, key, code, signature ...) are replaced in ``view_kwargs`` and in
  the path itself; a route listed in EVENTLOG_ROUTE_ONLY_PATHS (by URL pattern name or path
  prefix) is stored only as its route, ``/reset/<uidb64>/<token>/``, with no argument values.

Both are plain string work (no urllib round trip, which would re-encode or drop parts) and
cheap when there is nothing to do: most referrers have no secret parameter, most routes no
secret argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus

from pipeline.events import MAX_URL, truncate
from pipeline.redact_names import is_secret_name
from pipeline.redact_values import REDACTED

NO_NAMES: frozenset[str] = frozenset()


def _redact_params(params: str, extra: frozenset[str]) -> str:
    """``a=1&token=x`` -> ``a=1&token=[REDACTED]``; pieces without "=" are kept."""
    pieces = params.split("&")
    changed = False
    for i, piece in enumerate(pieces):
        name, eq, value = piece.partition("=")
        if eq and value and is_secret_name(unquote_plus(name) if "%" in name or "+" in name else name, extra):
            pieces[i] = name + "=" + REDACTED
            changed = True
    return "&".join(pieces) if changed else params


def _redact_userinfo(url: str) -> str:
    scheme_end = url.find("://")
    if scheme_end < 0:
        return url
    start = scheme_end + 3
    authority_end = len(url)
    for stop in "/?#":
        at = url.find(stop, start)
        if 0 <= at < authority_end:
            authority_end = at
    at = url.rfind("@", start, authority_end)
    colon = url.find(":", start, at)
    if at < 0 or colon < 0:
        return url
    return url[: colon + 1] + REDACTED + url[at:]


def redact_url(url: str, extra: frozenset[str] = NO_NAMES, limit: int = MAX_URL) -> str:
    """``url`` with secret parameter values (query and fragment) and any password replaced,
    then cut to ``limit`` characters with a truncation mark."""
    if not url:
        return url
    if "@" in url:
        url = _redact_userinfo(url)
    query = url.find("?")
    fragment = url.find("#")
    if fragment >= 0 and (query < 0 or query > fragment):
        query = -1  # a "?" inside the fragment is the fragment's own
    if query >= 0:
        end = fragment if fragment > query else len(url)
        url = url[: query + 1] + _redact_params(url[query + 1 : end], extra) + url[end:]
        fragment = url.find("#", query)
    if fragment >= 0 and "=" in url[fragment:]:  # e.g. OAuth's #access_token=...
        url = url[: fragment + 1] + _redact_params(url[fragment + 1 :], extra)
    return truncate(url, limit)


def _route_only(match_names: Sequence[str], path: str, entries: Sequence[str]) -> str | None:
    """The entry of EVENTLOG_ROUTE_ONLY_PATHS that covers this request, if any."""
    for entry in entries:
        if entry.startswith("/") and path.startswith(entry):
            return entry
        if entry in match_names:
            return entry
    return None


def _as_route(path: str, route: str | None, entry: str) -> str:
    """The stored form of a route-only path: its route, or the listed prefix when unknown."""
    if route and "(" not in route and not route.startswith("^"):
        return "/" + route
    return entry if entry.startswith("/") else "/" + REDACTED + "/"


def _replace_values(path: str, values: list[str]) -> str:
    """Every occurrence of the values in ``path`` replaced in one pass (longest first, so a
    value inside another is not half-replaced, and a marker is never matched again)."""
    values = sorted({v for v in values if v}, key=len, reverse=True)
    if not values:
        return path
    return re.sub("|".join(map(re.escape, values)), REDACTED, path)


def redact_route(
    path: str,
    args: list[Any],
    kwargs: Mapping[str, Any],
    match_names: Sequence[str] = (),
    route: str | None = None,
    route_only: Sequence[str] = (),
) -> tuple[str, list[Any], dict[str, Any]]:
    """(path_info, view_args, view_kwargs) as they may be stored.

    ``match_names`` are the URL pattern's names (Django's url_name and view_name), ``route``
    its route; ``route_only`` is EVENTLOG_ROUTE_ONLY_PATHS.
    """
    entry = _route_only(match_names, path, route_only) if route_only else None
    if entry is not None:
        return (_as_route(path, route, entry), [REDACTED for _ in args],
                dict.fromkeys(kwargs, REDACTED))
    secret = [name for name in kwargs if is_secret_name(name)]
    if not secret:
        return path, list(args), dict(kwargs)
    kept = dict(kwargs)
    for name in secret:
        kept[name] = REDACTED
    values = [str(kwargs[name]) for name in secret]
    if route and not all(v in path for v in values):  # a converter changed the text: store the route
        return _as_route(path, route, ""), list(args), kept
    return _replace_values(path, values), list(args), kept
