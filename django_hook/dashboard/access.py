"""Who may see the dashboard: staff only, decided before anything is read."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous -> login page; logged in but not staff -> 403. Checked before any MongoDB access."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.eventlog_skip = True  # looking at analytics is not site traffic
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("the eventlog dashboard is for staff")
        return view(request, *args, **kwargs)

    return wrapped
