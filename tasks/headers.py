"""Message headers eventlog sets on its Celery messages (read by the store's buffer and by health).

A module of its own so that the web process's publisher can import it without
the worker stack.
"""

EVENT_COUNT_HEADER = "eventlog_events"  # events (or raw lines) the message carries
PUBLISHED_HEADER = "eventlog_published"  # epoch seconds when it was published: health's queue age
