"""The hook's visitor cookie is exactly the one Django's set_cookie writes."""

from __future__ import annotations

import time

from django.http import HttpResponse

from django_hook.middleware import SIX_MONTHS, VisitorCookie

NAME = "eventlog_vid"


def django_cookie(value: str) -> str:
    response = HttpResponse()
    response.set_cookie(NAME, value, max_age=SIX_MONTHS, httponly=True, samesite="Lax")
    return response.cookies[NAME].output()


def hook_cookie(value: str, response: HttpResponse | None = None) -> str:
    response = response or HttpResponse()
    VisitorCookie(NAME).set(response, value)
    return response.cookies[NAME].output()


def same_second(make_both):  # noqa: ANN001, ANN201
    """Both cookies made within one wall-clock second (their Expires is to the second)."""
    while True:
        second = int(time.time())
        both = make_both()
        if int(time.time()) == second:
            return both


def test_the_cookie_header_equals_set_cookies() -> None:
    for value in ("0123456789abcdef0123456789abcdef", "needs quoting;,\\\"", "ünï"):
        ours, django = same_second(lambda v=value: (hook_cookie(v), django_cookie(v)))
        assert ours == django


def test_a_cookie_the_view_set_keeps_its_own_attributes() -> None:
    response = HttpResponse()
    response.set_cookie(NAME, "old", domain="example.org", secure=True)
    header = hook_cookie("new", response)
    assert "new" in header and "Domain=example.org" in header and "Secure" in header
    assert f"Max-Age={SIX_MONTHS}" in header and "HttpOnly" in header and "SameSite=Lax" in header
