"""POST collect/: the JS tracker's endpoint.

Validates, then hands events to the same spool as the middleware; nothing on
the request path talks to the broker. Who sent an event (user, IP, user agent)
comes from the request and the session, never from the payload.
"""

from __future__ import annotations

import logging
import time

from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.views.decorators.csrf import csrf_exempt

from django_hook import handoff
from django_hook.conf import eventlog_settings
from django_hook.cors import allowed as cors_allowed
from django_hook.cors import credentials_allowed, with_cors
from django_hook.offline import sync as offline_sync
from django_hook.offline.token import PackageToken, TokenRefused
from django_hook.offline.token import from_request as package_token
from django_hook.ratelimit import Budget
from django_hook.redaction import tracker_fields
from django_hook.request_info import (
    ANONYMOUS,
    client_ip,
    do_not_track,
    is_site_host,
    page_site,
    recorded_ip,
    username,
)
from django_hook.responses import json_error
from pipeline.config import Settings
from pipeline.events import InvalidEvent, parse_beacon
from pipeline.privacy import round_position

log = logging.getLogger(__name__)

# sendBeacon sends a string body as text/plain; fetch sends application/json.
ACCEPTED_TYPES = ("application/json", "text/plain")


def _origin_allowed(request: HttpRequest) -> bool:
    """The page that sent the beacon must be one of this site's hosts (Origin, else Referer)."""
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    if "://" not in source:
        return False
    host = source.split("://", 1)[1].split("/", 1)[0]
    domain, _port = split_domain_port(host)
    return is_site_host(domain)


def _within_budget(request: HttpRequest, s: Settings, events: int, size: int) -> HttpResponse | None:
    """Spend ``events`` and ``size`` bytes of the client's budgets (EVENTLOG_BEACON_RATE,
    EVENTLOG_BEACON_BYTES_RATE, per trusted client IP); a 429 once either is overspent."""
    client = client_ip(request, s.trusted_proxies) or "unknown"
    budgets = [(Budget("beacon-events", s.beacon_rate), events), (Budget("beacon-bytes", s.beacon_bytes_rate), size)]
    over = [budget for budget, amount in budgets if amount and not budget.spend(client, amount)]
    if not over:
        return None
    response = json_error(429, "too many events from this client; retry later")
    response["Retry-After"] = str(max(b.retry_after() for b in over))
    return response


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The body, or None when it exceeds ``limit`` (read no further than that)."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt
@with_cors  # preflights and CORS headers for EVENTLOG_TRACKER_ORIGINS and offline packages
def collect(request: HttpRequest) -> HttpResponse:
    request.eventlog_skip = True  # the middleware must not record beacons as page visits
    if request.method != "POST":
        response = json_error(405, "use POST")
        response["Allow"] = "POST"
        return response
    s = eventlog_settings()
    try:
        package = package_token(request)  # an offline package's sync (Origin: null)
    except TokenRefused as exc:
        return offline_sync.refused(exc)
    if package is None and cors_allowed(request) is None and not _origin_allowed(request):
        return json_error(403, "the Origin (or Referer) is not a host of this site")
    body = _read_body(request, s.beacon_max_bytes)
    # Every request costs at least one event (so floods of invalid ones are limited too) and
    # its bytes; the rest of its events once they are counted below.
    limited = _within_budget(request, s, 1, s.beacon_max_bytes if body is None else len(body))
    if limited:
        return limited
    if body is None:
        return json_error(413, f"body larger than {s.beacon_max_bytes} bytes")
    if not body:
        return json_error(400, "empty body: expected a JSON event")
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type not in ACCEPTED_TYPES:
        return json_error(415, f"content type must be one of {', '.join(ACCEPTED_TYPES)}")
    try:
        events = parse_beacon(body)
    except InvalidEvent as exc:
        return json_error(400, str(exc))
    limited = _within_budget(request, s, len(events) - 1, 0)
    if limited:
        return limited
    # The spool full (EVENTLOG_SPOOL_MAX_BYTES) or its disk: the tracker keeps the events and
    # retries (ids make a partly accepted batch land once). The spool logs that, once a minute.
    if not _hand_off(request, events, package):
        response = json_error(503, "events not accepted; retry later")
        response["Retry-After"] = "30"
        return response
    return offline_sync.with_renewal(HttpResponse(status=204), package)


def _hand_off(request: HttpRequest, events: list[dict], package: PackageToken | None = None) -> bool:
    """Spool the events; False when the spool dropped any of them."""
    s = eventlog_settings()
    # An old tracker (or another client) sending under Do Not Track / GPC: the same rules as
    # the middleware's, nothing that identifies the visitor (or nothing at all: "skip").
    private = s.respect_dnt and do_not_track(request.META)
    if private and s.dnt_mode == "skip":
        return True
    # An origin allowed without credentials: its cookies (visitor id, session) are not ours to read.
    trusted = package is None and not private and credentials_allowed(request)
    visitor_id = request.COOKIES.get(s.visitor_cookie) if trusted else None
    server = {
        "source": "js",
        "visited_by": username(request) if trusted else ANONYMOUS,
        "ip_address": None if private else recorded_ip(request, s),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:2048],
        "visitor_id": visitor_id[:64] if visitor_id else None,
        "first_time_visit": not private and visitor_id is None,
        "received": time.time(),
        "site": page_site(request, s.sites),
    }
    if package is not None:
        server.update(offline_sync.offline_fields(package))
        if private:  # nothing that identifies the learner, as for any other DNT beacon
            server.update(visited_by=ANONYMOUS, visitor_id=None)
    spool = handoff.spool()
    # Browser positions are rounded before they are written anywhere (EVENTLOG_COORDINATE_PRECISION);
    # secrets in the page's path, referrer and exit link are redacted likewise (docs/privacy.md).
    accepted = [spool.append({**round_position(tracker_fields(event, s), s.coordinate_precision), **server,
                              "kind": "js." + event["kind"]})
                for event in events]
    return all(accepted)
