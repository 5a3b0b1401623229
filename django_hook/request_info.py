"""What a request says about its visitor, shared by the middleware and the beacon."""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject, empty

ANONYMOUS = "AnonymousUser"


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
