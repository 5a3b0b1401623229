"""Which address is the client's, behind the proxies EVENTLOG_TRUSTED_PROXIES names."""

from __future__ import annotations

import pytest

from pipeline.config import load_settings
from pipeline.proxies import MAX_HOPS, ProxySettingError, parse_ip, trusted_proxies

PROXY = "10.0.0.5"
LB = "10.1.2.3"  # a second trusted hop (a load balancer in 10.1.0.0/16)
TRUSTED = ("10.0.0.5", "10.1.0.0/16", "fd00::/8")
CLIENT = "81.2.69.142"


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        # No header, or a peer we do not trust: the peer, whatever the header says.
        (PROXY, None, PROXY),
        (PROXY, "", PROXY),
        ("203.0.113.9", CLIENT, "203.0.113.9"),  # a client writing X-Forwarded-For itself
        ("203.0.113.9", f"{CLIENT}, {PROXY}", "203.0.113.9"),  # ... even naming our proxy
        ("10.0.0.6", CLIENT, "10.0.0.6"),  # next to the proxy, not the proxy
        # Through our proxy: the address it saw.
        (PROXY, CLIENT, CLIENT),
        (PROXY, f" {CLIENT} ", CLIENT),
        # Forged hops on the left (written by the client) are never read.
        (PROXY, f"1.1.1.1, {CLIENT}", CLIENT),
        (PROXY, f"127.0.0.1, 10.0.0.5, {CLIENT}", CLIENT),
        # Fewer hops than proxies: the rightmost untrusted address, never the leftmost.
        (PROXY, f"1.1.1.1, {CLIENT}, {LB}", CLIENT),
        (LB, f"1.1.1.1, {CLIENT}, {PROXY}", CLIENT),
        # Every hop is ours (a request from inside): the leftmost.
        (PROXY, f"{LB}, {PROXY}", LB),
        # IPv6, bracketed forms, ports, IPv4-mapped peers.
        (PROXY, "2001:db8::1", "2001:db8::1"),
        (PROXY, "[2001:db8::1]:4711", "2001:db8::1"),
        (PROXY, f"{CLIENT}:51234", CLIENT),
        ("fd00::7", CLIENT, CLIENT),
        ("::ffff:10.0.0.5", CLIENT, CLIENT),
        (PROXY, "::ffff:81.2.69.142", CLIENT),
        # Malformed: the peer (the event is still recorded, with the proxy's address).
        (PROXY, "unknown", PROXY),
        (PROXY, f"{CLIENT}, not-an-ip", PROXY),
        (PROXY, f"{CLIENT},", PROXY),
        (PROXY, "999.1.1.1", PROXY),
        (PROXY, "1.2.3.4:5:6", PROXY),
        (PROXY, ", ".join([PROXY] * (MAX_HOPS + 1)), PROXY),
        # Malformed only left of the client's address: never read, so it does not matter.
        (PROXY, f"garbage, {CLIENT}", CLIENT),
        # A peer that is no address (a unix socket's REMOTE_ADDR, or none at all).
        ("", CLIENT, ""),
        (None, CLIENT, None),
        ("unix:/run/site.sock", CLIENT, "unix:/run/site.sock"),
    ],
)
def test_the_client_address(remote, forwarded, expected) -> None:
    assert trusted_proxies(TRUSTED).client(remote, forwarded) == expected


@pytest.mark.parametrize("spec", [(), ("0",), ("",)])
def test_no_proxies_trusts_no_header(spec) -> None:
    assert trusted_proxies(spec).client("127.0.0.1", CLIENT) == "127.0.0.1"


@pytest.mark.parametrize("spec", [("1",), ("2",), ("10.0.0.0/33",), ("proxy.example",), ("10.0.0.5", "x")])
def test_a_count_or_a_bad_entry_is_refused_with_the_reason(spec) -> None:
    with pytest.raises(ProxySettingError, match="EVENTLOG_TRUSTED_PROXIES"):
        trusted_proxies(spec)


def test_the_setting_reads_a_list_and_an_old_count() -> None:
    assert load_settings({"EVENTLOG_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}).trusted_proxies == (
        "127.0.0.1", "10.0.0.0/8")
    assert load_settings({"EVENTLOG_TRUSTED_PROXIES": ["::1"]}).trusted_proxies == ("::1",)
    old = load_settings({"EVENTLOG_TRUSTED_PROXIES": 1}).trusted_proxies  # a Django setting of the old kind
    with pytest.raises(ProxySettingError, match="no longer accepted"):
        trusted_proxies(old)


def test_host_bits_in_a_network_are_accepted() -> None:
    assert trusted_proxies(("10.0.0.5/8",)).client("10.200.0.1", CLIENT) == CLIENT


@pytest.mark.parametrize(("text", "expected"), [("1.2.3.4", "1.2.3.4"), ("[::1]", "::1"), ("::1", "::1"),
                                                ("1.2.3.4:80", "1.2.3.4"), ("x", None), ("", None)])
def test_parse_ip(text, expected) -> None:
    parsed = parse_ip(text)
    assert (str(parsed) if parsed else None) == expected
