"""What the endpoints do with a request from an offline package (django_hook.offline.token).

collect/ (django_hook.beacon) stores the package's page views with ``source: "offline"``,
the package's learner as ``visited_by``, the package as the visitor and its own (old) times;
progress/ and progress/mark/ take the learner from the token instead of a session. A token
older than a day comes back renewed in RENEWED_HEADER.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from django_hook.cors import with_cors
from django_hook.offline.token import RENEWED_HEADER, PackageToken, TokenRefused, from_request, renewal
from django_hook.request_info import ANONYMOUS


def refused(exc: TokenRefused) -> JsonResponse:
    """403 for a forged or too old token; ``expired`` tells the package to ask for a new download."""
    return JsonResponse({"error": str(exc), "expired": exc.expired}, status=403)


def with_renewal(response: HttpResponse, token: PackageToken | None) -> HttpResponse:
    """A fresh token on an accepted sync whose token is due for one (the package keeps it)."""
    if token is not None and response.status_code < 300:
        fresh = renewal(token)
        if fresh:
            response[RENEWED_HEADER] = fresh
    return response


def offline_fields(token: PackageToken) -> dict[str, Any]:
    """Server-side fields of a package's tracker events (the payload never says who sent it)."""
    return {
        "source": "offline",
        "visited_by": token.learner or ANONYMOUS,
        "visitor_id": token.package_id,  # one downloaded copy, one visitor
        "first_time_visit": False,
        "site": token.site,
        "package_id": token.package_id,
        "earliest": float(token.downloaded),
    }


def package_learner(request: HttpRequest) -> str | None:
    """The learner an offline request speaks for: the token's, if that account is still active."""
    token = getattr(request, "eventlog_package", None)
    if token is None or not token.learner:
        return None
    users = get_user_model()._default_manager  # noqa: SLF001 - the documented way to reach the manager
    if not users.filter(**{get_user_model().USERNAME_FIELD: token.learner, "is_active": True}).exists():
        return None
    return token.learner


def _skip_response(request: HttpRequest) -> HttpResponse:  # CsrfViewMiddleware needs a get_response
    return HttpResponse()


def session_or_package(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """A progress endpoint reachable from the learner's session, CSRF-checked as usual, or from an
    offline package, whose token stands in for the session (it is no cookie the browser sends by
    itself, so there is nothing to forge across sites and no CSRF check to make).

    The view finds the token in ``request.eventlog_package`` (None for session requests).
    """

    @csrf_exempt
    @with_cors
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        try:
            token = from_request(request)
        except TokenRefused as exc:
            return refused(exc)
        if token is None:
            reason = CsrfViewMiddleware(_skip_response).process_view(request, None, (), {})
            if reason is not None:
                return reason
        request.eventlog_package = token
        return with_renewal(view(request), token)

    return wrapper
