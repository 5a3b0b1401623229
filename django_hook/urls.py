from django.urls import path

from django_hook import beacon, dashboard, progress_views, views

app_name = "eventlog"

urlpatterns = [
    path("collect/", beacon.collect, name="collect"),
    path("progress/", progress_views.progress_view, name="progress"),
    path("progress/mark/", progress_views.mark_view, name="progress-mark"),
    path("health/", views.health, name="health"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("dashboard/data.json", dashboard.data, name="dashboard-data"),
    path("dashboard/export/<slug:table>.<slug:fmt>", dashboard.export, name="dashboard-export"),
]
