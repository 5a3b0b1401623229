"""EventLogMiddleware: records every request that reaches the site.

On the request path it only copies what the request already holds into a dict,
gives it an event id and appends it to the local spool (one write syscall). No
parsing, no lookups, no broker: enrichment happens in the workers. Any failure
is logged and swallowed; the site never sees an exception from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from http.cookies import CookieError, Morsel
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.http import http_date

from django_hook import handoff
from django_hook.conf import eventlog_settings
from django_hook.redaction import request_route, stored_method, stored_url
from django_hook.request_info import ANONYMOUS, campaign, check_trusted_proxies, do_not_track, recorded_ip, username
from pipeline.config import Settings
from pipeline.events import new_event_id
from pipeline.redact import redact_post_data
from pipeline.sites import site_name

log = logging.getLogger(__name__)

SIX_MONTHS = 183 * 24 * 3600
MAX_HEADER = 2048
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@lru_cache(maxsize=2)
def _expires(second: int) -> str:
    # http_date (email.utils.formatdate) costs ~3 us and its text changes once a second.
    return http_date(second + SIX_MONTHS)


class VisitorCookie:
    """Sets the visitor cookie exactly as ``response.set_cookie(name, value, max_age=SIX_MONTHS,
    httponly=True, samesite="Lax")`` does, in about 2 us instead of 10 (profiled: set_cookie was
    the largest single cost of a first visit, and inside a whole request it costs 2-3 times as much).

    Django's set_cookie builds the http.cookies.Morsel attribute by attribute, each one
    validated, and formats the Expires date each time. Here Django's set_cookie builds the
    cookie once, as a template; a response gets a copy of the template's attributes with its
    value and the Expires date of the current second (http_date drops the fraction, so this
    is the text set_cookie would write). Morsel.output still formats the header.
    """

    def __init__(self, name: str, domain: str | None = None) -> None:
        self.name = name
        self.domain = domain or None  # EVENTLOG_VISITOR_COOKIE_DOMAIN: one visitor id on every subdomain
        self.attributes: dict[str, Any] | None = None
        probe = HttpResponse()
        try:
            probe.set_cookie(name, "", max_age=SIX_MONTHS, domain=self.domain, httponly=True, samesite="Lax")
        except CookieError:  # a bad EVENTLOG_VISITOR_COOKIE fails per request, logged, as before
            return
        self.attributes = dict(probe.cookies[name])  # validated by Morsel, once

    def set(self, response: HttpResponseBase, value: str) -> None:
        cookies = response.cookies
        # If the view set one, set_cookie keeps the attributes it does not pass itself.
        if self.attributes is None or self.name in cookies:
            response.set_cookie(self.name, value, max_age=SIX_MONTHS, domain=self.domain, httponly=True,
                                samesite="Lax")
            return
        text, coded = cookies.value_encode(value)
        # What Morsel.copy() does, minus Morsel.__init__ (which fills the nine attributes with
        # "" one by one, only for dict.update to replace them all) and minus Morsel.set's
        # checks of the name, which set_cookie made on the template.
        morsel = Morsel.__new__(Morsel)
        dict.update(morsel, self.attributes, expires=_expires(int(time.time())))
        morsel.__setstate__({"key": self.name, "value": text, "coded_value": coded})  # Morsel's own pickle state
        cookies[self.name] = morsel  # BaseCookie stores a Morsel as it is


def _post_data(request: HttpRequest, s: Settings) -> dict[str, Any] | None:
    if request.method != "POST":
        return None
    content_type = request.META.get("CONTENT_TYPE", "")
    if not content_type.startswith(_FORM_TYPES):
        return {"_content_type": content_type[:100], "_bytes": int(request.META.get("CONTENT_LENGTH") or 0)}
    try:
        form, uploads = request.POST, request.FILES
    except Exception:  # noqa: BLE001 - e.g. the view consumed the raw body stream
        return {"_unreadable": True}
    files = ((name, [(f.name, f.size) for f in items]) for name, items in uploads.lists())
    return redact_post_data(form.lists(), files, s.post_data_max, s.post_fields_allow)


class EventLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.settings = eventlog_settings()
        self.skip = self.settings.skip_paths
        self.cookie = self.settings.visitor_cookie
        self.visitor_cookie = VisitorCookie(self.cookie, self.settings.visitor_cookie_domain)
        self.sites = self.settings.sites
        check_trusted_proxies(self.settings.trusted_proxies)  # a bad list fails at start, not per request
        self.respect_dnt = self.settings.respect_dnt
        self.dnt_skip = self.settings.dnt_mode == "skip"
        # Start this process's spool and shipper now, so a spool left by a dead
        # process is adopted at start and not only after the first request.
        handoff.spool()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.skip):
            return self.get_response(request)
        event_id = new_event_id()
        request.eventlog_event_id = event_id  # the tracker merges into this page view
        started = time.time()
        response = self.get_response(request)
        if getattr(request, "eventlog_skip", False):  # eventlog's own endpoints, wherever mounted
            return response
        try:
            self._record(request, response, event_id, started)
        except Exception:  # noqa: BLE001 - logging must never break the site
            log.exception("eventlog: could not record %s", request.path_info[:200])
        return response

    def _record(self, request: HttpRequest, response: HttpResponse, event_id: str, started: float) -> None:
        meta = request.META
        # Do Not Track / Global Privacy Control: no IP, no user, no visitor id, no cookie
        # (EVENTLOG_DNT_MODE=anonymous), or nothing at all (skip).
        private = self.respect_dnt and do_not_track(meta)
        if private and self.dnt_skip:
            return
        visitor_id = None if private else request.COOKIES.get(self.cookie)
        first_time = not private and visitor_id is None
        if first_time:
            visitor_id = new_event_id()
            self.visitor_cookie.set(response, visitor_id)
        path_info, view_args, view_kwargs = request_route(
            request.path_info, getattr(request, "resolver_match", None), self.settings)
        event = {
            "event_id": event_id,
            "source": "middleware",
            "path_info": path_info,
            "visited_by": ANONYMOUS if private else username(request),
            "user_agent": meta.get("HTTP_USER_AGENT", "")[:MAX_HEADER],
            "ip_address": None if private else recorded_ip(request, self.settings),
            "datetime": started,
            "first_time_visit": first_time,
            "method": stored_method(request),
            "referrer": stored_url(meta.get("HTTP_REFERER", ""), self.settings),
            "page_title": "",
            "view_args": view_args,
            "view_kwargs": view_kwargs,
            "post_data": _post_data(request, self.settings),
            "visitor_id": visitor_id[:64] if visitor_id else None,
            "status_code": response.status_code,
            "site": site_name(meta.get("HTTP_HOST", ""), self.sites, request.scheme),
        }
        if private:
            event["dnt"] = True
        event.update(campaign(meta.get("QUERY_STRING", "")))  # utm_* only: no other query string is kept
        handoff.spool().append(event)
