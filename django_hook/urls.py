from django.urls import path

from django_hook import views

app_name = "eventlog"

urlpatterns = [
    path("health/", views.health, name="health"),
]
