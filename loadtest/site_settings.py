"""The demo site's settings for benchmark (d) (loadtest.site_bench), without eventlog's middleware.

LOADTEST_SITE_HOOK=off        EventLogMiddleware removed: the site's own capacity
LOADTEST_SITE_HOOK=original   replaced by the original design's LPUSH per request (loadtest.original_hook)

Everything else is demo.settings, unchanged (the tracker's template tag still renders;
collect/ stays mounted but the benchmark sends it nothing in these variants).
"""

import os

from demo.settings import *  # noqa: F403 - the same site
from demo.settings import MIDDLEWARE as DEMO_MIDDLEWARE

EVENTLOG_MIDDLEWARE = "django_hook.middleware.EventLogMiddleware"
HOOKS = {"off": [], "original": ["loadtest.original_hook.OriginalLogMiddleware"]}

_hook = os.environ.get("LOADTEST_SITE_HOOK", "off")
if _hook not in HOOKS:
    raise ValueError(f"LOADTEST_SITE_HOOK={_hook!r}: expected one of {', '.join(HOOKS)}")
# Same place in the chain (outermost), so the original hook sees what eventlog's would.
MIDDLEWARE = [m for name in DEMO_MIDDLEWARE for m in (HOOKS[_hook] if name == EVENTLOG_MIDDLEWARE else [name])]
