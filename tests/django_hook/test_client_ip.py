"""The hook records the address a trusted proxy saw, and nobody else's word for it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from django_hook.middleware import EventLogMiddleware

CLIENT = "81.2.69.142"


@pytest.fixture(autouse=True)
def _full_addresses():
    """Addresses as they are, so the test sees which one was taken (the hook may anonymise them)."""
    with override_settings(EVENTLOG_ANONYMIZE_IP=False):
        yield


def recorded_ip(spool_events, remote: str, forwarded: str | None) -> str | None:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    assert Client(REMOTE_ADDR=remote, HTTP_HOST="127.0.0.1").get("/cdcontent/", headers=headers).status_code == 200
    (event,) = [e for e in spool_events() if e.get("source") == "middleware"]
    return event["ip_address"]


def test_a_client_that_writes_the_header_itself_is_recorded_by_its_own_address(spool_events) -> None:
    # The demo trusts its load generator on 127.0.0.1 only; before, it trusted "1 proxy" from anyone.
    assert recorded_ip(spool_events, "203.0.113.50", CLIENT) == "203.0.113.50"


def test_the_address_the_trusted_proxy_saw_is_recorded(spool_events) -> None:
    assert recorded_ip(spool_events, "127.0.0.1", f"6.6.6.6, {CLIENT}") == CLIENT


@override_settings(EVENTLOG_TRUSTED_PROXIES="10.0.0.0/8")
def test_the_setting_decides_who_is_a_proxy(spool_events) -> None:
    assert recorded_ip(spool_events, "10.3.3.3", CLIENT) == CLIENT


@override_settings(EVENTLOG_TRUSTED_PROXIES="")
def test_without_proxies_the_header_is_ignored(spool_events) -> None:
    assert recorded_ip(spool_events, "127.0.0.1", CLIENT) == "127.0.0.1"


def test_a_malformed_header_records_the_peer_and_the_visit(spool_events) -> None:
    assert recorded_ip(spool_events, "127.0.0.1", "<script>, 1.2.3") == "127.0.0.1"


@pytest.mark.parametrize("value", [1, "2", "10.0.0.0/40"])
def test_a_proxy_count_or_a_bad_network_stops_the_site_at_start(value) -> None:
    with override_settings(EVENTLOG_TRUSTED_PROXIES=value), pytest.raises(ImproperlyConfigured, match="TRUSTED"):
        EventLogMiddleware(lambda request: None)
