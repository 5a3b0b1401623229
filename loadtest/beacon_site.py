"""The site the beacon benchmark serves with gunicorn: eventlog's collect/ endpoint
next to a plain Django view that answers 204 and does nothing else (the baseline)."""

import os

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application

# Configured before the imports below: the app's URL module reads settings on import.
if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="beacon-bench-only",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                        "django_hook"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware"],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        SILENCED_SYSTEM_CHECKS=["django_ratelimit.E003", "django_ratelimit.W001"],
        EVENTLOG_BEACON_RATE=os.environ.get("EVENTLOG_BEACON_RATE", "100000000/m"),
        USE_TZ=True,
    )

django.setup()

from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


@csrf_exempt
def noop(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


urlpatterns = [
    path("noop/", noop),
    path("eventlog/", include("django_hook.urls")),
]

application = get_wsgi_application()
