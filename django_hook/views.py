"""HTTP endpoints of the eventlog app."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from django_hook.conf import eventlog_settings


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when broker and store answer, 503 otherwise; JSON details either way."""
    request.eventlog_skip = True
    from tasks.health import health as pipeline_health

    healthy, details = pipeline_health(eventlog_settings())
    return JsonResponse(details, status=200 if healthy else 503)
