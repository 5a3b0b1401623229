"""The demo's login view, throttled: failed logins are counted per (client IP, user name)
in Django's cache, and past DEMO_LOGIN_FAILURES in the period the form answers 429
without checking the password, so nobody can guess a learner's password at speed."""

from __future__ import annotations

import os

from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse

from django_hook.conf import eventlog_settings
from django_hook.ratelimit import Budget
from django_hook.request_info import client_ip

# Five failures per user name and address in 15 minutes: a learner who mistypes gets
# several tries; a script gets 20 guesses an hour per account.
LOGIN_FAILURES = os.environ.get("DEMO_LOGIN_FAILURES", "5/15m")
THROTTLED = "Too many failed logins for this user from your address; try again in a few minutes."


def _failures() -> Budget:
    return Budget("demo-login-failures", LOGIN_FAILURES)


def _key(request: HttpRequest) -> str:
    ip = client_ip(request, eventlog_settings().trusted_proxies) or "unknown"
    return f"{ip}|{request.POST.get('username', '').strip().lower()[:150]}"


class ThrottledLoginView(LoginView):
    template_name = "demo/login.html"

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if _failures().exhausted(_key(request)):
            # An unbound form: a bound one would check the password as it validates.
            form = self.get_form_class()(request, initial={"username": request.POST.get("username", "")[:150]})
            response = self.render_to_response(self.get_context_data(form=form, throttled=THROTTLED), status=429)
            response["Retry-After"] = str(_failures().retry_after())
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form) -> HttpResponse:  # noqa: ANN001 - Django's AuthenticationForm
        _failures().spend(_key(self.request))
        return super().form_invalid(form)
