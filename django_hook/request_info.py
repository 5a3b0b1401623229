"""What a request says about its visitor, shared by the middleware, the beacon
and the dashboard."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest
from django.http.request import validate_host
from django.utils.functional import SimpleLazyObject, empty

ANONYMOUS = "AnonymousUser"


def is_site_host(host: str, allow_wildcard: bool = True) -> bool:
    """Whether ``host`` (no port) is one of this site's: ALLOWED_HOSTS, or localhost when it is empty.

    ``allow_wildcard=False`` ignores a "*" entry, where it would make every host on the web ours.
    """
    patterns = list(django_settings.ALLOWED_HOSTS) or ["localhost", "127.0.0.1"]
    if not allow_wildcard:
        patterns = [p for p in patterns if p != "*"]
    return bool(host) and validate_host(host, patterns)


def client_ip(request: HttpRequest, trusted_proxies: int) -> str | None:
    """REMOTE_ADDR, or with N trusted proxies in front the Nth address from the
    right of X-Forwarded-For (the one the outermost trusted proxy saw)."""
    remote = request.META.get("REMOTE_ADDR")
    if trusted_proxies <= 0:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not forwarded:
        return remote
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    if not hops:
        return remote
    return hops[-min(trusted_proxies, len(hops))]


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
