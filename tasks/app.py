"""The Celery application (``celery -A tasks ...``).

Task modules are listed in ``include`` rather than imported here: a worker
imports them at start, while a web process that only *publishes* (the hook's
shipper) loads Celery and this configuration and nothing of the worker stack
(enrichment pulls in geoip2, ua-parser, pydantic and scipy: ~70 MB and a second
of import time per web process).
"""

from celery import Celery

from tasks import quorum

TASK_MODULES = ["tasks.enrich", "tasks.store", "tasks.rollups", "tasks.retention", "tasks.worker_setup"]

app = Celery("eventlog", include=TASK_MODULES)
app.config_from_object("celeryconfig")
# Workers declare eventlog.dead, where quorum queues dead-letter (tasks/quorum.py).
quorum.install(app)
