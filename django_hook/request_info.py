"""What a request says about its visitor, shared by the middleware, the beacon
and the dashboard."""

from __future__ import annotations

from urllib.parse import parse_qsl

from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.http.request import validate_host
from django.utils.functional import SimpleLazyObject, empty

from pipeline.config import Settings
from pipeline.privacy import anonymize_ip_or_none
from pipeline.proxies import ProxySettingError, trusted_proxies
from pipeline.sites import origin_host, site_name

ANONYMOUS = "AnonymousUser"


def is_site_host(host: str, allow_wildcard: bool = True) -> bool:
    """Whether ``host`` (no port) is one of this site's: ALLOWED_HOSTS, or localhost when it is empty.

    ``allow_wildcard=False`` ignores a "*" entry, where it would make every host on the web ours.
    """
    patterns = list(django_settings.ALLOWED_HOSTS) or ["localhost", "127.0.0.1"]
    if not allow_wildcard:
        patterns = [p for p in patterns if p != "*"]
    return bool(host) and validate_host(host, patterns)


def client_ip(request: HttpRequest, trusted: tuple[str, ...]) -> str | None:
    """The client's address: REMOTE_ADDR, or, when REMOTE_ADDR is one of the ``trusted``
    proxies (EVENTLOG_TRUSTED_PROXIES), the rightmost X-Forwarded-For hop no trusted
    proxy wrote (pipeline/proxies.py). A malformed header gives REMOTE_ADDR."""
    meta = request.META
    remote = meta.get("REMOTE_ADDR")
    if not trusted:  # the usual case costs nothing
        return remote
    return trusted_proxies(trusted).client(remote, meta.get("HTTP_X_FORWARDED_FOR"))


def check_trusted_proxies(trusted: tuple[str, ...]) -> None:
    """ImproperlyConfigured, at start-up, for an EVENTLOG_TRUSTED_PROXIES that cannot be used."""
    try:
        trusted_proxies(trusted)
    except ProxySettingError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


def username(request: HttpRequest) -> str:
    """The logged-in user's name, or "AnonymousUser" (the original system's value).

    request.user is lazy. If the view never looked at it and the session holds no
    user, the visitor is anonymous and nothing is loaded; only a logged-in user the
    view never touched costs the one user lookup Django would do for it.
    """
    user = getattr(request, "user", None)
    if user is None:
        return ANONYMOUS
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:  # noqa: SLF001 - cheap peek
        session = getattr(request, "session", None)
        if session is None or SESSION_KEY not in session:
            return ANONYMOUS
    return user.get_username() if user.is_authenticated else ANONYMOUS


def do_not_track(meta: dict) -> bool:
    """The browser asks not to be tracked: Do Not Track (``DNT: 1``) or Global Privacy Control
    (``Sec-GPC: 1``). Two dict lookups: it runs on every request."""
    return meta.get("HTTP_DNT", "").strip() == "1" or meta.get("HTTP_SEC_GPC", "").strip() == "1"


def recorded_ip(request: HttpRequest, s: Settings) -> str | None:
    """The client IP as eventlog records it: with EVENTLOG_ANONYMIZE_IP on, anonymised here at
    the hook, so the spool, the broker, dead letters and MongoDB never see the full address.
    (The beacon's rate limit keys on the full client_ip, which is never stored.)"""
    ip = client_ip(request, s.trusted_proxies)
    return anonymize_ip_or_none(ip) if ip and s.anonymize_ip else ip


def page_site(request: HttpRequest, sites: tuple[str, ...]) -> str | None:
    """The ``site`` of a tracker event: the host of the page that sent it (Origin, else Referer),
    so a tracker on a subdomain page posting to this site's collect/ names the subdomain; the
    request's own host when neither says."""
    for header in ("Origin", "Referer"):
        parsed = origin_host(request.headers.get(header) or "")
        if parsed is not None:
            return site_name(parsed[1], sites, parsed[0])
    return site_name(request.META.get("HTTP_HOST", ""), sites, request.scheme)


UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
MAX_UTM = 200


def campaign(query_string: str) -> dict[str, str]:
    """The utm_source / utm_medium / utm_campaign parameters of a query string (the rollups'
    campaign dimensions), each cut to MAX_UTM characters; nothing else of the query string.

    Parsed only when "utm_" occurs in it: on most requests this is one substring test.
    """
    if "utm_" not in query_string:
        return {}
    found: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=False):
        if name in UTM_FIELDS and name not in found:
            found[name] = value.strip()[:MAX_UTM]
    return {k: v for k, v in found.items() if v}
