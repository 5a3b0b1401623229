from django.urls import path

from django_hook import beacon, progress_views, views

app_name = "eventlog"

urlpatterns = [
    path("collect/", beacon.collect, name="collect"),
    path("progress/", progress_views.progress_view, name="progress"),
    path("progress/mark/", progress_views.mark_view, name="progress-mark"),
    path("health/", views.health, name="health"),
]
