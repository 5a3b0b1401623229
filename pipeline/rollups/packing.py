"""Large nested values of rollup documents (bucket rows, a visit's pages, count tables) stored as
one compact JSON text each.

Why: a store's cost per document follows the number of values in it, not only its bytes.
nx-27017 decodes, converts and re-encodes every value one Python call at a time: a bucket's
rows written as nested lists cost it 15 s per 100,000 events, as one string 1.9 s (read back:
8.5 s against 0.8 s; loadtest/results, 2026-12-01). A real MongoDB stores either form; the
text form is also smaller there. These values are only ever read whole by this package, never
queried by their parts, so nothing is lost by packing them.

:func:`unpack` also takes the unpacked form, which documents written before this change hold.
"""

from __future__ import annotations

import json
from typing import Any


def pack(value: Any) -> str:
    # default=str: a stray non-JSON value (an ObjectId in a path, say) is kept as its text.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def unpack(value: Any) -> Any:
    """The value :func:`pack` stored; lists and other unpacked values (older documents) as they are."""
    return json.loads(value) if isinstance(value, str) else value
