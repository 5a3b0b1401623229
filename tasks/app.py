"""The Celery application (``celery -A tasks ...``)."""

from celery import Celery

app = Celery("eventlog")
app.config_from_object("celeryconfig")
