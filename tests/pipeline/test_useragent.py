"""pipeline.enrich.useragent: User-Agent -> browser/os/device fields (real ua-parser)."""

from __future__ import annotations

import pytest

from pipeline.enrich.useragent import parse_user_agent

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 13; SM-G991B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"

FIELDS = {"browser_family", "browser_version", "os_family", "os_version", "device_family", "device_type", "is_bot"}


def test_desktop_chrome_on_windows() -> None:
    ua = parse_user_agent(CHROME_WINDOWS)
    assert set(ua) == FIELDS
    assert ua["device_type"] == "PC"
    assert ua["browser_family"] == "Chrome"
    assert ua["browser_version"].startswith("120")
    assert ua["os_family"] == "Windows"
    assert ua["os_version"] == "10"
    assert ua["is_bot"] is False


def test_android_phone() -> None:
    ua = parse_user_agent(ANDROID_PHONE)
    assert ua["device_type"] == "Mobile"
    assert ua["browser_family"] == "Chrome Mobile"
    assert ua["os_family"] == "Android"
    assert ua["os_version"] == "13"
    assert "SM-G991B" in ua["device_family"]
    assert ua["is_bot"] is False


def test_ipad_is_a_tablet() -> None:
    ua = parse_user_agent(IPAD)
    assert ua["device_type"] == "Tablet"
    assert ua["device_family"] == "iPad"
    assert ua["os_family"] == "iOS"
    assert ua["is_bot"] is False


def test_googlebot_is_a_bot() -> None:
    ua = parse_user_agent(GOOGLEBOT)
    assert ua["device_type"] == "Bot"
    assert ua["is_bot"] is True
    assert ua["browser_family"] == "Googlebot"


def test_firefox_on_linux_is_pc() -> None:
    ua = parse_user_agent(FIREFOX_LINUX)
    assert ua["device_type"] == "PC"
    assert ua["browser_family"] == "Firefox"
    assert ua["os_family"] == "Ubuntu"


@pytest.mark.parametrize("value", ["", "curl-like-nothing", "\x00\x01"])
def test_unknown_or_empty_is_other(value: str) -> None:
    ua = parse_user_agent(value)
    assert set(ua) == FIELDS
    assert ua["device_type"] == "Other"
    assert ua["is_bot"] is False
    # strings, never None (these are website_logs string fields)
    for key in FIELDS - {"is_bot"}:
        assert isinstance(ua[key], str), key


def test_cache_returns_equal_results() -> None:
    parse_user_agent.cache_clear()
    first = parse_user_agent(ANDROID_PHONE)
    misses = parse_user_agent.cache_info().misses
    second = parse_user_agent(ANDROID_PHONE)
    assert second == first
    assert parse_user_agent.cache_info().hits >= 1
    assert parse_user_agent.cache_info().misses == misses
    # a different agent gives a different answer (the cache is keyed by the string)
    assert parse_user_agent(IPAD) != first
