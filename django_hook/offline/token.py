"""The sync token of an offline package (django.core.signing, the site's SECRET_KEY).

A package's pages run from file:// and send ``Origin: null``, so nothing about the request
says who sent it. The token does: signed by the site, it names the package, the course,
the learner who downloaded it (None if nobody was logged in), the site, when the package
was downloaded and when this token was issued. Anyone without it is refused (403).

Lifetime: a token is valid for EVENTLOG_OFFLINE_TOKEN_MAX_AGE seconds after it was issued;
a sync within EVENTLOG_OFFLINE_TOKEN_GRACE seconds after that is still accepted, and any
accepted sync with a token older than RENEW_AFTER gets a fresh one (same package, learner
and download time) in the RENEWED_HEADER answer header, which the package keeps. So a
learner who syncs now and then never loses anything to expiry; one who stays away longer
than lifetime + grace is refused with ``expired``, and the package keeps the records and
tells them to download the course again (the new package sends the old records).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

from django.core import signing
from django.http import HttpRequest

from django_hook.conf import eventlog_settings

SALT = "eventlog.offline-package"
HEADER = "X-Eventlog-Package"
RENEWED_HEADER = "X-Eventlog-Package-Renewed"
RENEW_AFTER = 24 * 3600  # at most one new token a day per package
MAX_TOKEN = 2048


class TokenRefused(Exception):
    """The request carried a token that is not valid; ``expired``: valid signature, too old."""

    def __init__(self, reason: str, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


@dataclass(frozen=True)
class PackageToken:
    package_id: str
    foss: str
    language: str
    learner: str | None  # username, or None for a package downloaded without logging in
    site: str | None
    downloaded: int  # epoch seconds: no event of the package can be older
    issued: int  # epoch seconds: the lifetime counts from here


def issue(token: PackageToken) -> str:
    """The signed, URL-safe text of ``token``."""
    return signing.dumps(asdict(token), salt=SALT, compress=True)


def verify(text: str, now: float | None = None) -> PackageToken:
    """The token ``text`` stands for; TokenRefused if it is forged, malformed or past its grace."""
    if not text or len(text) > MAX_TOKEN:
        raise TokenRefused("package token missing or malformed")
    try:
        fields = signing.loads(text, salt=SALT)
        token = PackageToken(**fields)
    except (signing.BadSignature, TypeError, ValueError):
        raise TokenRefused("package token refused: not signed by this site") from None
    s = eventlog_settings()
    age = (time.time() if now is None else now) - token.issued
    if age > s.offline_token_max_age + s.offline_token_grace:
        raise TokenRefused("package token expired: download the course again", expired=True)
    return token


def renewal(token: PackageToken, now: float | None = None) -> str | None:
    """A fresh token for an accepted sync whose token is older than RENEW_AFTER, else None."""
    now = int(time.time() if now is None else now)
    if now - token.issued < RENEW_AFTER:
        return None
    return issue(replace(token, issued=now))


def from_request(request: HttpRequest) -> PackageToken | None:
    """The request's package token (None if it carries none); TokenRefused if it is not valid."""
    text = request.headers.get(HEADER)
    if text is None:
        return None
    return verify(text.strip())
