"""Secrets recognised by their value, wherever they sit in a text.

Used on POST values, whose field names may say nothing ("comment", "q"): each detector
replaces only the part of the text that is a secret, so "card 4111 1111 1111 1111, thanks"
keeps its words. The detectors:

- card numbers: 13-19 digits that pass the Luhn check, written in one run or in groups of
  3-8 digits separated by spaces, dashes or dots (a group sequence inside a longer run of
  numbers is found too: "call 98765 4111 1111 1111 1111");
- JWT-shaped strings: a base64url JSON header ("eyJ...") followed by a dot and a payload;
- long high-entropy strings: 24 or more characters of the base64/base64url/hex alphabets that
  mix letters with digits in short runs (3.3 characters per run of one kind at most) and
  have at least 3.5 bits of entropy per character (API keys, access keys, hex or base64
  tokens; words, slugs and titles have longer runs).
"""

from __future__ import annotations

import math
import re
from collections import Counter

REDACTED = "[REDACTED]"

CARD_MIN, CARD_MAX = 13, 19
ENTROPY_MIN_LENGTH = 24
ENTROPY_MIN_BITS = 3.5
MEAN_RUN_MAX = 3.3  # characters per run of lower case, upper case or digits

# A run of digit groups; each candidate inside it is checked group by group.
_DIGIT_RUN = re.compile(r"(?<![0-9])(?:[0-9]{13,19}|[0-9]{3,8}(?:[ .\-][0-9]{3,8})+)(?![0-9])")
_GROUP = re.compile(r"[0-9]+")
_WHOLE_CARD = re.compile(r"^[0-9 .\-]{13,27}$")
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]*)*")
_RUN = re.compile(r"[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_TOKEN_RUN = re.compile(rf"[A-Za-z0-9_+/=\-]{{{ENTROPY_MIN_LENGTH},}}")


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check that every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return CARD_MIN <= len(digits) <= CARD_MAX and luhn_ok(digits)


def looks_like_card_number(value: str) -> bool:
    """True when the whole of ``value`` is one card number (spaces, dashes or dots allowed)."""
    if not _WHOLE_CARD.match(value):
        return False
    return _is_card(value.replace(" ", "").replace("-", "").replace(".", ""))


def _card_spans(run: re.Match[str]) -> list[tuple[int, int]]:
    """Spans (in the whole text) of the card numbers in one run of digit groups."""
    groups = [(m.start() + run.start(), m.end() + run.start(), m.group()) for m in _GROUP.finditer(run.group())]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(groups):
        found = None
        digits = ""
        for j in range(i, len(groups)):
            digits += groups[j][2]
            if len(digits) > CARD_MAX:
                break
            if _is_card(digits):
                found = j  # the longest card starting at group i wins
        if found is None:
            i += 1
            continue
        spans.append((groups[i][0], groups[found][1]))
        i = found + 1
    return spans


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + REDACTED + text[end:]
    return text


def redact_card_numbers(text: str) -> str:
    spans = [span for run in _DIGIT_RUN.finditer(text) for span in _card_spans(run)]
    return _replace_spans(text, spans) if spans else text


def looks_random(token: str) -> bool:
    """True for a string that reads like a key or hash rather than like words.

    Generated keys mix letters and digits in short runs ("4eC39HqL": 1-2 characters per run
    of one kind, about 2 on average); names, slugs and titles are made of words
    ("Python3-Basics-Part2": 4.6). Measured on random base62/base64/hex strings of 24-32
    characters: 99 % average at most 3.0-3.6.
    """
    runs = _RUN.findall(token)
    if not runs or not any(r.isdigit() for r in runs) or all(r.isdigit() for r in runs):
        return False  # letters and digits both, as generated keys have
    if sum(map(len, runs)) / len(runs) > MEAN_RUN_MAX:
        return False
    counts = Counter(token)
    bits = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return bits >= ENTROPY_MIN_BITS


def redact_random_strings(text: str) -> str:
    spans = [m.span() for m in _TOKEN_RUN.finditer(text) if looks_random(m.group())]
    return _replace_spans(text, spans) if spans else text


def redact_jwts(text: str) -> str:
    return _JWT.sub(REDACTED, text) if "eyJ" in text else text


def redact_value(text: str) -> str:
    """``text`` with every card number, JWT and high-entropy string replaced by REDACTED."""
    return redact_random_strings(redact_card_numbers(redact_jwts(text)))
