"""Analytics dashboard (staff only), from the rollups' read API only.

    dashboard/                          the page (date-range picker, charts, tables, live view, health)
    dashboard/data.json                 the same figures as JSON (?start=&end=&limit=)
    dashboard/live.json                 the live view: the last 5 and 30 minutes (pipeline.live)
    dashboard/export/<table>.<csv|json> one table, whole (up to the rollups' top-N per day)

Modules, one job each: ``access`` (staff only, before any read), ``ranges`` (the
date range and the paths filter), ``tables`` (columns and builders), ``data`` (the figures,
cached per rollup run), ``formatting`` (cells and cards), ``views`` (the page,
data.json, live.json), ``export`` (CSV/JSON downloads). JSON answers: django_hook.responses.

Anonymous users are sent to the login page and non-staff users get 403, both
before MongoDB is touched. Pipeline health (queues, spool, dead letters, lag) is
fetched by the page from the ``health/`` endpoint, which monitors poll as well.
"""
