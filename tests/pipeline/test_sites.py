"""pipeline/sites.py: the `site` of an event, from its host and EVENTLOG_SITES."""

from __future__ import annotations

import time

import pytest

from pipeline.events import MAX_CLIENT_PAST, client_time
from pipeline.sites import normalise_host, origin_host, parse_sites, site_name


@pytest.mark.parametrize(("host", "scheme", "expected"), [
    ("Example.ORG", "", "example.org"),
    ("example.org.", "https", "example.org"),
    ("example.org:443", "https", "example.org"),
    ("example.org:80", "http", "example.org"),
    ("example.org:443", "http", "example.org:443"),  # not the scheme's default: another site
    ("127.0.0.1:8001", "http", "127.0.0.1:8001"),
    ("[::1]:8000", "http", "[::1]:8000"),
    ("[::1]", "http", "[::1]"),
])
def test_hosts_are_normalised(host: str, scheme: str, expected: str) -> None:
    assert normalise_host(host, scheme) == expected


def test_eventlog_sites_names_hosts_with_or_without_their_port() -> None:
    sites = ("forums.example.org=forums", "127.0.0.1:8001=second", "WWW.Example.org=main")
    assert site_name("forums.example.org:8443", sites, "https") == "forums"
    assert site_name("127.0.0.1:8001", sites) == "second"
    assert site_name("127.0.0.1:8002", sites) == "127.0.0.1:8002"
    assert site_name("www.example.org", sites) == "main"
    assert site_name("", sites) is None


def test_a_malformed_entry_names_itself() -> None:
    with pytest.raises(ValueError, match="'forums.example.org'"):
        parse_sites(["forums.example.org"])


def test_origins() -> None:
    assert origin_host("https://forums.example.org") == ("https", "forums.example.org")
    assert origin_host("http://127.0.0.1:8001/path") == ("http", "127.0.0.1:8001")
    assert origin_host("null") is None and origin_host("file:///tmp/x.html") is None


def test_an_offline_event_older_than_the_usual_bound_keeps_its_time_if_not_older_than_its_package() -> None:
    now = time.time()
    old = now - 2 * MAX_CLIENT_PAST
    assert client_time(old * 1000, now).timestamp() == pytest.approx(now)  # online: implausible
    assert client_time(old * 1000, now, earliest=old - 60).timestamp() == pytest.approx(old)
    assert client_time(old * 1000, now, earliest=old + 3600).timestamp() == pytest.approx(now)
