"""CORS for the tracker's and the offline packages' endpoints (collect/, progress/).

Answered cross-origin, and to nobody else:
- origins in EVENTLOG_TRACKER_CREDENTIAL_ORIGINS, with credentials (their pages may send the
  visitor cookie and the session: normally the site's own subdomains);
- origins in EVENTLOG_TRACKER_ORIGINS, without credentials (the browser gets no
  Access-Control-Allow-Credentials, and the endpoints ignore any cookie such a request carries);
- ``Origin: null`` (a downloaded package opened from file://) only for requests carrying a
  package token (django_hook.offline.token), never with credentials.
Same-origin requests need none of this and get no CORS headers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

from django_hook.conf import eventlog_settings
from django_hook.offline.token import HEADER as TOKEN_HEADER
from django_hook.offline.token import RENEWED_HEADER

ALLOW_HEADERS = f"Content-Type, {TOKEN_HEADER}"
PREFLIGHT_MAX_AGE = "7200"  # Chromium caps it at 2 hours


def allowed(request: HttpRequest) -> tuple[str, bool] | None:
    """(origin to echo, credentials allowed) when this cross-origin request may be answered."""
    origin = request.headers.get("Origin")
    if not origin:
        return None
    s = eventlog_settings()
    if origin in s.tracker_credential_origins:
        return origin, True
    if origin in s.tracker_origins:
        return origin, False
    if origin == "null" and _names_token(request):
        return origin, False
    return None


def credentials_allowed(request: HttpRequest) -> bool:
    """Whether the endpoint may read this request's cookies: same origin, or a credential origin."""
    origin = request.headers.get("Origin")
    if not origin:
        return True
    grant = allowed(request)
    if grant is not None:
        return grant[1]
    return True  # same-origin (or refused later by the endpoint's own origin check)


def _names_token(request: HttpRequest) -> bool:
    if TOKEN_HEADER in request.headers:
        return True
    asked = request.headers.get("Access-Control-Request-Headers", "")
    return TOKEN_HEADER.lower() in (h.strip().lower() for h in asked.split(","))


def _add_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ("Origin",))
    grant = allowed(request)
    if grant is None:
        return response
    origin, credentials = grant
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Expose-Headers"] = RENEWED_HEADER
    if credentials:
        response["Access-Control-Allow-Credentials"] = "true"
    return response


def _preflight(request: HttpRequest) -> HttpResponse:
    if allowed(request) is None:
        return HttpResponse(status=403)
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
    response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    response["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return _add_headers(request, response)


def with_cors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer preflights for ``view`` and add CORS headers to whatever it answers."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        request.eventlog_skip = True  # neither preflights nor API calls are page visits
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return _preflight(request)
        return _add_headers(request, view(request, *args, **kwargs))

    return wrapper
