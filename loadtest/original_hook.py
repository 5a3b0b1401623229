"""The original design's hook, for benchmark (d) (loadtest.site_bench).

One JSON log per request, LPUSHed onto the Redis list that loadtest.baselines
consumes, on the request path (the original middleware talked to Redis while the
visitor waited). The fields are the original thirteen plus an event id, so the
benchmark can count what was stored; ``datetime`` is epoch seconds, as the
baseline consumer's ``stored_at``. Django settings: loadtest.site_settings with
LOADTEST_SITE_HOOK=original; the list lives at LOADTEST_ORIGINAL_REDIS.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import redis
from django.http import HttpRequest, HttpResponse

from loadtest.baselines import LIST_KEY
from pipeline.config import load_settings


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _client_ip(request: HttpRequest) -> str | None:
    # The demo sits behind one (simulated) proxy: the client is the last X-Forwarded-For hop.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    return hops[-1] if hops else request.META.get("REMOTE_ADDR")


class OriginalLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.url = os.environ.get("LOADTEST_ORIGINAL_REDIS", "redis://127.0.0.1:6379/12")
        self.skip = load_settings().skip_paths
        self._client: redis.Redis | None = None
        self._pid = 0

    def _redis(self) -> redis.Redis:
        # One connection pool per process: gunicorn forks after the app may have loaded.
        if self._client is None or self._pid != os.getpid():
            self._client, self._pid = redis.Redis.from_url(self.url), os.getpid()
        return self._client

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.skip):
            return self.get_response(request)
        started = time.time()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        user = getattr(request, "user", None)
        log = {
            "event_id": os.urandom(16).hex(),
            "path_info": request.path_info,
            "visited_by": str(user) if user is not None else "AnonymousUser",
            "ip_address": _client_ip(request),
            "datetime": started,
            "method": request.method,
            "referrer": request.META.get("HTTP_REFERER", ""),
            "user_agent": request.META.get("HTTP_USER_AGENT", ""),
            "first_time_visit": "eventlog_vid" not in request.COOKIES,
            "page_title": "",
            "view_args": [_plain(a) for a in match.args] if match else [],
            "view_kwargs": {k: _plain(v) for k, v in match.kwargs.items()} if match else {},
            "post_data": dict(request.POST.items()) if request.method == "POST" else None,
            "status_code": response.status_code,
        }
        try:
            self._redis().lpush(LIST_KEY, json.dumps(log))
        except redis.RedisError:  # the original logged and went on
            pass
        return response
