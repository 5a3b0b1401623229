"""POST data redaction: secrets never leave the web process.

Runs in the hook (only for requests that carry a form body). A field is stored as
REDACTED when its name is secret (pipeline/redact_names.py); any other value keeps its
text with the card numbers, JWTs and high-entropy strings in it replaced
(pipeline/redact_values.py). With an allow-list (EVENTLOG_POST_FIELDS_ALLOW) only the listed
fields are kept at all, and still redacted by the same rules.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pipeline.events import safe_key
from pipeline.redact_names import is_secret_name
from pipeline.redact_values import REDACTED, looks_like_card_number, redact_value

__all__ = ["MAX_FIELDS", "MAX_VALUE", "REDACTED", "looks_like_card_number", "redact_mapping", "redact_post_data"]

MAX_VALUE = 512
MAX_FIELDS = 64
# Detectors read a little past MAX_VALUE: a secret that starts before the cut is seen whole
# (the longest card number with separators is 23 characters, a random string needs 24).
_SCAN = MAX_VALUE + 32


def _clean_value(name: str, value: str) -> str:
    if is_secret_name(name):
        return REDACTED
    return redact_value(value[:_SCAN])[:MAX_VALUE]


def redact_post_data(
    form: Iterable[tuple[str, list[str]]],
    files: Iterable[tuple[str, list[tuple[str, int]]]] = (),
    max_bytes: int = 4096,
    allow: Collection[str] = (),
) -> dict[str, Any]:
    """Redacted, size-capped copy of a form body.

    ``form`` yields (field, values) pairs (Django's ``QueryDict.lists()``); ``files``
    yields (field, [(file name, size), ...]). Single values are stored as strings,
    repeated ones as lists; uploaded files only as name and size. Once the kept
    data reaches ``max_bytes`` the rest is dropped and ``_truncated`` is set.
    With ``allow`` (field names) every other field is left out and counted in ``_omitted``.
    """
    out: dict[str, Any] = {}
    used = 0
    truncated = False
    omitted = 0
    for name, values in form:
        if allow and name not in allow:
            omitted += 1
            continue
        if len(out) >= MAX_FIELDS or used >= max_bytes:
            truncated = True
            break
        used += len(name)
        cleaned: list[str] = []
        for v in values:  # a repeated field must not bypass the cap either
            if cleaned and used >= max_bytes:
                truncated = True
                break
            cleaned.append(_clean_value(name, v))
            used += len(cleaned[-1])
        out[safe_key(name)] = cleaned[0] if len(cleaned) == 1 else cleaned
    for name, uploads in files:
        if allow and name not in allow:
            omitted += 1
            continue
        if len(out) >= MAX_FIELDS:
            truncated = True
            break
        out[safe_key(name)] = [{"file_name": redact_value(f[:_SCAN])[:MAX_VALUE], "size": s} for f, s in uploads]
    if truncated:
        out["_truncated"] = True
    if omitted:
        out["_omitted"] = omitted
    return out


def redact_mapping(data: Mapping[str, Any], allow: Collection[str] = ()) -> dict[str, Any]:
    """Redact a flat mapping of field -> value (for callers without a QueryDict)."""
    pairs = ((k, [str(x) for x in v] if isinstance(v, list) else [str(v)]) for k, v in data.items())
    return redact_post_data(pairs, allow=allow)
