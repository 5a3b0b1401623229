"""Settings of the demo tutorial site (not for production: see README)."""

import os
from pathlib import Path

from demo.secret_key import secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EVENTLOG_VAR_DIR", BASE_DIR / "var"))

# DEMO_SECRET_KEY, else a random key made once and kept in VAR_DIR/secret-key (never one in the source).
SECRET_KEY = secret_key(VAR_DIR)
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
    # X-Frame-Options: DENY, so no other site can frame the login form or the dashboard.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
X_FRAME_OPTIONS = "DENY"

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

# The beacon's budgets and the login throttle count in Django's cache, so it must be shared by
# every web process: `make up` points DEMO_CACHE_URL at its Redis. Without it (tests, a
# RabbitMQ-only stack) each process counts alone in its memory cache.
_CACHE_URL = os.environ.get("DEMO_CACHE_URL", "")
CACHES = {"default": {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": _CACHE_URL,
    "KEY_PREFIX": os.environ.get("DEMO_CACHE_PREFIX", "demo"),
    # A cache that does not answer must not hold a request up (the limits then let it through).
    "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
} if _CACHE_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["eventlog.W002"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The load generator plays a reverse proxy on this machine that sets X-Forwarded-For (it spreads
# the visitors over countries): trust exactly that address, nobody else.
EVENTLOG_TRUSTED_PROXIES = os.environ.get("EVENTLOG_TRUSTED_PROXIES", "127.0.0.1,::1")
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
