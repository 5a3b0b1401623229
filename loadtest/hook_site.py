"""A trivial Django site for measuring the hook's added time per request (loadtest.hook)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def page(request: HttpRequest, **kwargs: str) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("", page),
    path("watch/<str:foss>/<str:tutorial>/<str:language>/", page),
]
