from django.apps import AppConfig


class EventlogConfig(AppConfig):
    name = "django_hook"
    label = "eventlog"
    verbose_name = "eventlog"

    def ready(self) -> None:
        from django_hook import checks  # noqa: F401 - registers eventlog's system checks
