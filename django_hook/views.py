"""HTTP endpoints of the eventlog app."""

from __future__ import annotations

import hmac

from django.http import HttpRequest, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from django_hook.conf import eventlog_settings


def may_see_health_details(request: HttpRequest, token: str) -> bool:
    """Staff (logged in), or ``Authorization: Bearer <EVENTLOG_HEALTH_TOKEN>`` when a token is set."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken says nothing about how much of a guess was right.
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when broker and store answer and nothing waits too long, 503 otherwise.

    Everyone gets the status word; staff and monitors holding the token get the figures
    (queues, stages, spool, dead letters, lag). Answered from a per-process cache
    (tasks.health_cache), so a flood of probes costs one check every few seconds.
    """
    request.eventlog_skip = True
    from tasks.health_cache import cached_health

    s = eventlog_settings()
    healthy, details = cached_health(s)
    body = details if may_see_health_details(request, s.health_token) else {"status": details["status"]}
    response = JsonResponse(body, status=200 if healthy else 503)
    response["Cache-Control"] = "no-store"
    patch_vary_headers(response, ("Authorization", "Cookie"))
    return response
