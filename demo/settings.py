"""Settings of the demo tutorial site (not for production: see README)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EVENTLOG_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DEMO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_hook",
    "demo",
]

MIDDLEWARE = [
    # Outermost: it sees the response the visitor gets (after redirects added by
    # the middleware below) and reads request.user, set on the way in.
    "django_hook.middleware.EventLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the tracker script (and any static file) from the apps, no collectstatic.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "demo.sqlite3",
    }
}
# Signed-cookie sessions: no database write per request under the load generator.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# django-ratelimit (the beacon's rate limit) counts in Django's cache. The demo's
# per-process memory cache limits per gunicorn worker; a production site should
# point CACHES at a shared cache (Redis, Memcached) and drop these two lines.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The load generator plays a reverse proxy that sets X-Forwarded-For.
EVENTLOG_TRUSTED_PROXIES = int(os.environ.get("EVENTLOG_TRUSTED_PROXIES", "1"))
EVENTLOG_PROGRESS_CATALOGUE = "demo.catalogue.course_for"
# The demo asks visitors for their position (the browser prompts; a refusal is fine).
EVENTLOG_TRACKER_GEOLOCATION = os.environ.get("EVENTLOG_TRACKER_GEOLOCATION", "1") == "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"eventlog": {"handlers": ["console"], "level": "INFO"},
                "pipeline": {"handlers": ["console"], "level": "INFO"},
                "django_hook": {"handlers": ["console"], "level": "INFO"}},
}
