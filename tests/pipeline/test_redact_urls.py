"""pipeline.redact_urls: stored URLs and routes keep everything but their secrets."""

from __future__ import annotations

import pytest

from pipeline.events import MAX_URL, TRUNCATED
from pipeline.redact_names import extra_names
from pipeline.redact_urls import redact_route, redact_url
from pipeline.redact_values import REDACTED

R = REDACTED


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        # the referrer: the rest of the URL is kept, in order
        ("http://partner.example/cb?token=abc&code=xyz", f"http://partner.example/cb?token={R}&code={R}"),
        ("https://a.example/p/q?page=2&access_token=t&lang=en", f"https://a.example/p/q?page=2&access_token={R}&lang=en"),
        ("https://a.example/?id_token=x&apikey=y&api-key=z&ApiKey=w",
         f"https://a.example/?id_token={R}&apikey={R}&api-key={R}&ApiKey={R}"),
        ("https://bucket.s3.example/o.pdf?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F1&X-Amz-Signature=abc",
         f"https://bucket.s3.example/o.pdf?X-Amz-Algorithm=AWS4&X-Amz-Credential={R}&X-Amz-Signature={R}"),
        ("https://a.example/?sig=1&signature=2&secret=3&auth=4&session=5&password=6&passwd=7",
         f"https://a.example/?sig={R}&signature={R}&secret={R}&auth={R}&session={R}&password={R}&passwd={R}"),
        ("https://a.example/?client_secret=s&key=k&sessionid=i&PHPSESSID=p",
         f"https://a.example/?client_secret={R}&key={R}&sessionid={R}&PHPSESSID={R}"),
        ("https://a.example/?Token=a&TOKEN=b&to%6Ben=c", f"https://a.example/?Token={R}&TOKEN={R}&to%6Ben={R}"),
        ("https://a.example/?q=python&foss=BASH&state=xyz", "https://a.example/?q=python&foss=BASH&state=xyz"),
        ("https://a.example/?keyword=a&author=b&country_code=IN", "https://a.example/?keyword=a&author=b&country_code=IN"),
        # fragments (OAuth's implicit flow), empty values, names without values, repeated names
        ("https://a.example/cb#access_token=t&state=s", f"https://a.example/cb#access_token={R}&state=s"),
        ("https://a.example/cb?x=1#section-2", "https://a.example/cb?x=1#section-2"),
        ("https://a.example/?token=&token&a=1", "https://a.example/?token=&token&a=1"),
        ("https://a.example/?token=1&token=2", f"https://a.example/?token={R}&token={R}"),
        ("https://a.example/?a=1&token=x=y", f"https://a.example/?a=1&token={R}"),
        # user:password@ in the authority
        ("https://user:hunter2@a.example/p?x=1", f"https://user:{R}@a.example/p?x=1"),
        ("https://user@a.example/p", "https://user@a.example/p"),
        ("https://a.example/p?next=/u@x", "https://a.example/p?next=/u@x"),
        # nothing to do
        ("", ""), ("https://a.example/", "https://a.example/"), ("not a url ?token=x", f"not a url ?token={R}"),
    ],
)
def test_stored_urls(url: str, stored: str) -> None:
    assert redact_url(url) == stored


def test_extra_names_from_the_setting_match_any_spelling() -> None:
    extra = extra_names(("utm_id", "Ref-Code"))
    url = "https://a.example/?utm_id=1&UTM-ID=2&refCode=3&utm_source=4"
    assert redact_url(url, extra) == f"https://a.example/?utm_id={R}&UTM-ID={R}&refCode={R}&utm_source=4"


def test_a_url_longer_than_the_limit_is_cut_with_a_mark() -> None:
    url = "https://a.example/?token=" + "t" * 3000 + "&b=" + "x" * 3000
    stored = redact_url(url)
    assert len(stored) == MAX_URL and stored.endswith(TRUNCATED)
    assert stored.startswith(f"https://a.example/?token={R}&b=xxx")


RESET = "/accounts/reset/MQ/c4k3-0f1e2d3c4b5a69788796a5b4/"
KWARGS = {"uidb64": "MQ", "token": "c4k3-0f1e2d3c4b5a69788796a5b4"}
ROUTE = "accounts/reset/<uidb64>/<token>/"


def test_secret_kwargs_leave_the_path_and_the_kwargs() -> None:
    assert redact_route(RESET, [], KWARGS, ("password_reset_confirm",), ROUTE) == (
        f"/accounts/reset/{R}/{R}/", [], {"uidb64": R, "token": R})


@pytest.mark.parametrize(
    ("path", "kwargs", "stored_path"),
    [
        ("/verify/abc123/", {"code": "abc123"}, f"/verify/{R}/"),
        ("/share/K-1/doc/K-1x/", {"key": "K-1x", "doc": "K-1"}, f"/share/K-1/doc/{R}/"),  # longest value first
        ("/s/RED/", {"sig": "RED"}, f"/s/{R}/"),  # the marker itself is not matched again
        ("/reset/MQ-set-abc/", {"uidb64": "MQ", "token": "set-abc"}, f"/reset/{R}-{R}/"),
        ("/watch/BASH/Intro/English/", {"foss": "BASH", "tutorial": "Intro", "language": "English"},
         "/watch/BASH/Intro/English/"),
    ],
)
def test_secret_kwargs_table(path: str, kwargs: dict, stored_path: str) -> None:
    stored, _args, stored_kwargs = redact_route(path, [], kwargs)
    assert stored == stored_path
    assert all(stored_kwargs[k] == R for k in kwargs if k in ("code", "key", "sig", "uidb64", "token"))


def test_a_secret_kwarg_a_converter_changed_falls_back_to_the_route() -> None:
    # e.g. a converter that lower-cases: the path holds "ABC", the kwarg "abc"
    stored, _, kwargs = redact_route("/t/ABC/", [], {"token": "abc"}, (), "t/<lower:token>/")
    assert (stored, kwargs) == ("/t/<lower:token>/", {"token": R})


@pytest.mark.parametrize("entry", ["password_reset_confirm", "accounts:password_reset_confirm", "/accounts/reset/"])
def test_route_only_entries(entry: str) -> None:
    names = ("password_reset_confirm", "accounts:password_reset_confirm")
    assert redact_route(RESET, ["x"], KWARGS, names, ROUTE, (entry,)) == (
        "/" + ROUTE, [R], {"uidb64": R, "token": R})


def test_route_only_with_a_regex_route_or_none() -> None:
    assert redact_route("/r/abc/", [], {"t": "abc"}, ("r",), r"^r/(?P<t>\w+)/$", ("r",))[0] == f"/{R}/"
    assert redact_route("/reset/abc", [], {}, (), None, ("/reset/",))[0] == "/reset/"


def test_unlisted_routes_are_untouched_by_route_only() -> None:
    path = "/watch/BASH/Intro/English/"
    assert redact_route(path, [], {"foss": "BASH"}, ("watch",), "watch/<str:foss>/", ("/reset/",))[0] == path
