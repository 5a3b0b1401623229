"""What a request says about its visitor, shared by the middleware and the beacon."""

from __future__ import annotations

from django.http import HttpRequest


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
    """The logged-in user's name, or "AnonymousUser" (the original system's value)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user.get_username()
    return "AnonymousUser"
