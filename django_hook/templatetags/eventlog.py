"""{% load eventlog %}{% eventlog_tracker %}: includes the tracker on a page."""

from __future__ import annotations

import json

from django import template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_hook.conf import eventlog_settings

register = template.Library()


@register.simple_tag(takes_context=True)
def eventlog_tracker(context: template.Context) -> SafeString:
    """A deferred <script> for the tracker, told the page-view id the middleware
    gave this request so the browser's details merge into the same document."""
    s = eventlog_settings()
    request = context.get("request")
    config = {
        # EVENTLOG_COLLECT_URL: a subdomain's pages report to the main site's collect/, with cookies.
        "endpoint": s.collect_url or reverse("eventlog:collect"),
        "cred": bool(s.collect_url),
        "pv": getattr(request, "eventlog_event_id", None),
        "geo": s.tracker_geolocation,
        "dnt": s.respect_dnt,
        "queueMax": s.tracker_queue_max,
    }
    return format_html('<script src="{}" data-eventlog="{}" defer></script>',
                       static("eventlog/tracker.js"), json.dumps(config))
