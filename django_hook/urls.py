from django.urls import path

from django_hook import beacon, views

app_name = "eventlog"

urlpatterns = [
    path("collect/", beacon.collect, name="collect"),
    path("health/", views.health, name="health"),
]
