from django.apps import AppConfig


class EventlogConfig(AppConfig):
    name = "django_hook"
    label = "eventlog"
    verbose_name = "eventlog"
