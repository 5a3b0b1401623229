"""POST collect/: the JS tracker's endpoint.

Validates, then hands events to the same spool as the middleware; nothing on
the request path talks to the broker. Who sent an event (user, IP, user agent)
comes from the request and the session, never from the payload.
"""

from __future__ import annotations

import logging
import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port
from django.views.decorators.csrf import csrf_exempt
from django_ratelimit.core import is_ratelimited

from django_hook import handoff
from django_hook.conf import eventlog_settings
from django_hook.request_info import client_ip, is_site_host, username
from pipeline.events import InvalidEvent, parse_beacon

log = logging.getLogger(__name__)

# sendBeacon sends a string body as text/plain; fetch sends application/json.
ACCEPTED_TYPES = ("application/json", "text/plain")


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _origin_allowed(request: HttpRequest) -> bool:
    """The page that sent the beacon must be one of this site's hosts (Origin, else Referer)."""
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    if "://" not in source:
        return False
    host = source.split("://", 1)[1].split("/", 1)[0]
    domain, _port = split_domain_port(host)
    return is_site_host(domain)


def _rate_key(group: str, request: HttpRequest) -> str:
    return client_ip(request, eventlog_settings().trusted_proxies) or "unknown"


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The body, or None when it exceeds ``limit`` (read no further than that)."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt
def collect(request: HttpRequest) -> HttpResponse:
    request.eventlog_skip = True  # the middleware must not record beacons as page visits
    if request.method != "POST":
        response = _error(405, "use POST")
        response["Allow"] = "POST"
        return response
    s = eventlog_settings()
    if not _origin_allowed(request):
        return _error(403, "the Origin (or Referer) is not a host of this site")
    if is_ratelimited(request, group="eventlog.collect", key=_rate_key, rate=s.beacon_rate, increment=True):
        return _error(429, "too many events from this client; retry later")
    body = _read_body(request, s.beacon_max_bytes)
    if body is None:
        return _error(413, f"body larger than {s.beacon_max_bytes} bytes")
    if not body:
        return _error(400, "empty body: expected a JSON event")
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type not in ACCEPTED_TYPES:
        return _error(415, f"content type must be one of {', '.join(ACCEPTED_TYPES)}")
    try:
        events = parse_beacon(body)
    except InvalidEvent as exc:
        return _error(400, str(exc))
    try:
        _hand_off(request, events)
    except OSError:  # e.g. the spool's disk is full: the tracker keeps the events and retries
        log.exception("eventlog: could not spool %d tracker events", len(events))
        response = _error(503, "events not accepted; retry later")
        response["Retry-After"] = "30"
        return response
    return HttpResponse(status=204)


def _hand_off(request: HttpRequest, events: list[dict]) -> None:
    s = eventlog_settings()
    visitor_id = request.COOKIES.get(s.visitor_cookie)
    server = {
        "source": "js",
        "visited_by": username(request),
        "ip_address": client_ip(request, s.trusted_proxies),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:2048],
        "visitor_id": visitor_id[:64] if visitor_id else None,
        "first_time_visit": visitor_id is None,
        "received": time.time(),
    }
    spool = handoff.spool()
    for event in events:
        spool.append({**event, **server, "kind": "js." + event["kind"]})
