"""POST data redaction: secrets never leave the web process.

Runs in the hook (only for requests that carry a form body), so it is written for
speed: one precompiled regex per field name, values checked only when short
enough to be a card number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.events import safe_key

REDACTED = "[REDACTED]"
MAX_VALUE = 512
MAX_FIELDS = 64

# Field names that carry secrets. Substring match, case-insensitive:
# "password1", "api_key", "csrfmiddlewaretoken", "card_number", "cvv" ...
SECRET_NAME = re.compile(
    # "key" only as a word part (api_key, key, private-key), not inside "keyword" or "monkey".
    r"pass|pwd|token|csrf|secret|(?:^|[_\-])key(?:$|[_\-])|apikey|privatekey|auth(?!ors?(?:$|[_\-]))|session|cookie|otp|pin\b|pin_|"
    r"card|cc_?num|ccn|cvv|cvc|iban|ssn|signature",
    re.IGNORECASE,
)
_CARD_LIKE = re.compile(r"^[\d \-]{12,23}$")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def looks_like_card_number(value: str) -> bool:
    """True for 13-19 digit strings (spaces/dashes allowed) that pass the Luhn check."""
    if not _CARD_LIKE.match(value):
        return False
    digits = value.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and _luhn_ok(digits)


def _clean_value(name: str, value: str) -> str:
    if SECRET_NAME.search(name) or looks_like_card_number(value):
        return REDACTED
    return value[:MAX_VALUE]


def redact_post_data(
    form: Iterable[tuple[str, list[str]]],
    files: Iterable[tuple[str, list[tuple[str, int]]]] = (),
    max_bytes: int = 4096,
) -> dict[str, Any]:
    """Redacted, size-capped copy of a form body.

    ``form`` yields (field, values) pairs (Django's ``QueryDict.lists()``); ``files``
    yields (field, [(file name, size), ...]). Single values are stored as strings,
    repeated ones as lists; uploaded files only as name and size. Once the kept
    data reaches ``max_bytes`` the rest is dropped and ``_truncated`` is set.
    """
    out: dict[str, Any] = {}
    used = 0
    truncated = False
    for name, values in form:
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
        if len(out) >= MAX_FIELDS:
            truncated = True
            break
        out[safe_key(name)] = [{"file_name": f[:MAX_VALUE], "size": s} for f, s in uploads]
    if truncated:
        out["_truncated"] = True
    return out


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """Redact a flat mapping of field -> value (for callers without a QueryDict)."""
    return redact_post_data((k, [str(x) for x in v] if isinstance(v, list) else [str(v)]) for k, v in data.items())
