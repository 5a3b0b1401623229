"""The hook's side of redaction and truncation: what a request or a tracker event may put in
the spool.

Redaction happens here, where an event enters (the middleware for page views, the beacon
for tracker events), so a secret never reaches the spool, the broker, a dead letter or
MongoDB. The rules themselves are plain Python in pipeline/redact_names.py,
redact_values.py, redact_urls.py and redact.py (docs/privacy.md).

Values a visitor controls are cut to the limits of pipeline/events.py with a visible
truncation mark: an over-long but valid request is stored, not dead-lettered.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import islice
from typing import Any

from django.http import HttpRequest
from django.urls import Resolver404, ResolverMatch, resolve

from pipeline.config import Settings
from pipeline.events import MAX_ARGS, MAX_METHOD, MAX_URL, truncate
from pipeline.redact_names import extra_names, is_secret_name
from pipeline.redact_urls import redact_route, redact_url

# A header is cut to this before it is redacted (bounded work for a hostile 64 KB header),
# then to MAX_URL after, with the mark.
_SCAN_URL = 4 * MAX_URL


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_URL else truncate(value, MAX_URL)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return truncate(str(value), MAX_URL)  # a converter's object (UUID, date ...) as text


def _match_names(match: ResolverMatch) -> tuple[str, ...]:
    return tuple(n for n in (match.url_name, match.view_name) if n)


@lru_cache(maxsize=1024)
def _any_secret(names: tuple[str, ...]) -> bool:
    return any(is_secret_name(n) for n in names)


def request_route(path: str, match: ResolverMatch | None, s: Settings) -> tuple[str, list[Any], dict[str, Any]]:
    """(path_info, view_args, view_kwargs) of a request, redacted and cut to their limits."""
    if match is None:
        if s.route_only_paths:
            path = redact_route(path[:_SCAN_URL], [], {}, (), None, s.route_only_paths)[0]
        return truncate(path, MAX_URL), [], {}
    args = [_plain(a) for a in match.args[:MAX_ARGS]]
    kwargs = {k: _plain(v) for k, v in islice(match.kwargs.items(), MAX_ARGS)}
    # The usual request (no route-only list, no secret argument name) costs one cached lookup.
    if s.route_only_paths or (kwargs and _any_secret(tuple(kwargs))):
        path, args, kwargs = redact_route(path[:_SCAN_URL], args, kwargs, _match_names(match), match.route,
                                          s.route_only_paths)
    return truncate(path, MAX_URL), args, kwargs


def stored_url(url: str, s: Settings) -> str:
    """A referrer or link as it may be stored: secret parameters redacted, cut to MAX_URL."""
    if "?" not in url and "#" not in url and "@" not in url:  # most referrers: nothing to redact
        return truncate(url, MAX_URL)
    return redact_url(url[:_SCAN_URL], extra_names(s.redact_query_params))


def stored_method(request: HttpRequest) -> str:
    # Django takes any token as a method; the stored field holds MAX_METHOD characters.
    return truncate(request.method or "", MAX_METHOD)


def tracker_fields(event: dict[str, Any], s: Settings) -> dict[str, Any]:
    """A validated tracker event with its page path, referrer and exit link redacted.

    The path is resolved against the site's URLconf, so a tracker event of a reset page is
    redacted by the same rules as the middleware's record of it.
    """
    out = dict(event)
    try:
        match: ResolverMatch | None = resolve(event["path"])
    except Resolver404:
        match = None
    except Exception:  # noqa: BLE001 - a hostile path must not fail the request; keep it unresolved
        match = None
    out["path"] = request_route(event["path"], match, s)[0]
    if out.get("referrer"):
        out["referrer"] = stored_url(out["referrer"], s)
    if out.get("url"):
        out["url"] = stored_url(out["url"], s)
    return out
