"""eventlog's plain-Python core: no Django, no Celery (workers, web processes and tools share it)."""
