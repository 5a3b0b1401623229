from django.urls import path

from django_hook import beacon, progress_views, views
from django_hook.dashboard import export as dashboard_export
from django_hook.dashboard import views as dashboard_views

app_name = "eventlog"

urlpatterns = [
    path("collect/", beacon.collect, name="collect"),
    path("progress/", progress_views.progress_view, name="progress"),
    path("progress/mark/", progress_views.mark_view, name="progress-mark"),
    path("health/", views.health, name="health"),
    path("dashboard/", dashboard_views.page, name="dashboard"),
    path("dashboard/data.json", dashboard_views.data_json, name="dashboard-data"),
    path("dashboard/live.json", dashboard_views.live_json, name="dashboard-live"),
    path("dashboard/export/<slug:table>.<slug:fmt>", dashboard_export.export, name="dashboard-export"),
]
