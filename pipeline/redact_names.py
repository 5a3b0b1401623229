"""Which field, query parameter and URL keyword names carry secrets.

One rule for POST fields, query parameters and view keyword arguments, so an operator
learns one list. A name is split into lower-case words at separators, case changes and
digits ("X-Amz-Signature" -> x amz signature, "accessKey" -> access key,
"password1" -> password 1) and is secret when:

- one of its words is a secret word (``SECRET_WORDS``: short or ambiguous words such as
  key, code, pw, pin, sig only as whole words, so "keyword", "monkey" and "zipcode" are kept);
- one of its words, or all of them joined, contains a secret stem (``SECRET_STEMS``: long,
  unambiguous parts such as token, secret, passw, signature, so "newpassword", "authToken"
  and "pass_word" are secret);
- two neighbouring words are a secret pair (security answer, cc num ...);
- or its words joined equal an extra name from settings (EVENTLOG_REDACT_QUERY_PARAMS).

"code" after a word that makes it a public code (country code, postal code, language
code ...) is kept: those are analytics, not secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

# Whole words only: each is too short or too common to look for inside other words.
SECRET_WORDS = frozenset({
    "pass", "pw", "pwd", "pin", "otp", "totp", "hotp", "mfa", "tan",
    "key", "code", "auth", "session", "sess", "sid", "sig", "ticket", "nonce",
    "cred", "creds", "card", "ccn", "csc", "cvn", "iban", "ssn", "uidb", "hmac",
})
# Parts of a word (or of all words joined) that only secret names contain.
SECRET_STEMS = (
    "passw", "passphrase", "passcode", "token", "secret", "signature", "credential", "apikey",
    "accesskey", "privatekey", "secretkey", "sessionid", "sessionkey", "sessid", "authkey", "authcode",
    "bearer", "jwt", "csrf", "xsrf", "cookie", "cvv", "cvc", "creditcard", "cardnum", "cardno",
    "oauth", "authoriz", "authentic", "otpcode",
)
# Neighbouring words that together name a secret.
SECRET_PAIRS = frozenset({
    ("security", "answer"), ("secret", "answer"), ("cc", "num"), ("cc", "number"), ("cc", "no"),
    ("cc", "exp"), ("account", "number"), ("routing", "number"), ("recovery", "phrase"),
})
# "<word> code" names that are public codes, not secrets.
PUBLIC_CODES = frozenset({
    "country", "postal", "post", "zip", "area", "language", "lang", "locale", "currency", "region",
    "state", "iso", "dial", "phone", "calling", "product", "item", "sku", "status", "error",
    "response", "http", "colour", "color", "tax", "course", "class", "source", "subject", "hsn",
})

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STEMS = re.compile("|".join(SECRET_STEMS))


def name_words(name: str) -> list[str]:
    """``name`` as lower-case words: "X-Amz-Signature" -> ["x", "amz", "signature"]."""
    return [w.lower() for w in _WORD.findall(name)]


def normalise(name: str) -> str:
    """The words of ``name`` joined: "Access-Token", "access_token", "accessToken" -> "accesstoken"."""
    return "".join(name_words(name))


def _secret_words(words: list[str]) -> bool:
    for i, word in enumerate(words):
        if word in SECRET_WORDS:
            if word == "code" and i > 0 and words[i - 1] in PUBLIC_CODES:
                continue
            return True
        if i and (words[i - 1], word) in SECRET_PAIRS:
            return True
    return False


@lru_cache(maxsize=4096)
def is_secret_name(name: str, extra: frozenset[str] = frozenset()) -> bool:
    """Whether a field, parameter or keyword argument called ``name`` holds a secret.

    ``extra`` holds further names, normalised with ``normalise`` (see ``extra_names``).
    Cached: a site sends the same few hundred names over and over.
    """
    words = name_words(name)
    joined = "".join(words)
    if _secret_words(words) or _STEMS.search(joined):
        return True
    return bool(extra) and joined in extra


@lru_cache(maxsize=64)
def extra_names(names: Iterable[str]) -> frozenset[str]:
    """EVENTLOG_REDACT_QUERY_PARAMS as ``is_secret_name`` matches them (any spelling of the words)."""
    return frozenset(filter(None, (normalise(n) for n in names)))
