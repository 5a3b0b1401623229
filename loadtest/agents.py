"""Pools of user agents and client IPs for the traffic generator.

The IP networks were checked against the GeoLite2-City database that the demo
uses (maxminddb-geolite2): every address drawn from them resolves to the listed
country (crawler networks: to their operator's country). ``ip_pool`` checks the
drawn addresses again at run time against the database the workers actually
use and keeps only the ones that resolve as expected, so a different database
never produces misattributed traffic.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------- user agents

DESKTOP: tuple[str, ...] = (
    # Chrome on Windows, macOS, Linux
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.130 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/109.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/118.0.0.0 Safari/537.36",
    # Firefox on Windows, macOS, Linux
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
    "Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0",
    # Safari on macOS
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Safari/605.1.15",
    # Edge on Windows and macOS
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.92",
    # Opera on Windows
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Safari/537.36 OPR/109.0.0.0",
)

MOBILE: tuple[str, ...] = (
    # Android phones: Chrome, Samsung Internet, Firefox, UC Browser
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-A515F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.6312.99 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; Redmi Note 10 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.6261.119 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; vivo 1906) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/110.0.5481.153 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
    "Mozilla/5.0 (Linux; U; Android 10; en-US; RMX2020 Build/QP1A.190711.020) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.108 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
    # iPhones: Safari, Chrome (CriOS)
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/124.0.6367.71 Mobile/15E148 Safari/604.1",
)

TABLET: tuple[str, ...] = (
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 15_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.6312.118 Safari/537.36",
)

@dataclass(frozen=True)
class Bot:
    user_agent: str
    weight: float  # Googlebot and bingbot crawl far more than the rest
    operator: str  # key of BOT_NETWORKS: crawlers come from their operator's addresses


BOTS: tuple[Bot, ...] = (
    Bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 30, "google"),
    Bot("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.91 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        20, "google"),
    Bot("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 20, "microsoft"),
    Bot("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", 6, "yandex"),
    Bot("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", 4, "microsoft"),
    Bot("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 8, "ahrefs"),
)

# Share of human visitors per device class.
DEVICE_WEIGHTS: dict[str, float] = {"desktop": 0.48, "mobile": 0.44, "tablet": 0.08}
_BY_DEVICE: dict[str, tuple[str, ...]] = {"desktop": DESKTOP, "mobile": MOBILE, "tablet": TABLET}
_DEVICE_OF: dict[str, str] = {agent: device for device, agents in _BY_DEVICE.items() for agent in agents}


def human_user_agent(rng: random.Random) -> str:
    device = rng.choices(list(DEVICE_WEIGHTS), weights=list(DEVICE_WEIGHTS.values()))[0]
    return rng.choice(_BY_DEVICE[device])


def device_class(user_agent: str) -> str:
    """"desktop", "mobile" or "tablet": the class ``human_user_agent`` drew ``user_agent`` from."""
    return _DEVICE_OF.get(user_agent, "desktop")


def pick_bot(rng: random.Random) -> Bot:
    return rng.choices(BOTS, weights=[b.weight for b in BOTS])[0]


# ---------------------------------------------------------------- countries and IPs


@dataclass(frozen=True)
class Country:
    code: str
    weight: float  # share of human visitors
    networks: tuple[str, ...]
    accept_language: str
    languages: tuple[tuple[str, float], ...]  # tutorial languages this audience prefers
    timezone: str  # what the browser's Intl API reports (tracker.js sends it)


COUNTRIES: tuple[Country, ...] = (
    Country("IN", 40, ("49.36.0.0/14", "117.192.0.0/10", "59.88.0.0/13", "122.160.0.0/12", "106.192.0.0/11"),
            "en-IN,en;q=0.9,hi;q=0.8", (("English", 0.5), ("Hindi", 0.35), ("Tamil", 0.15)), "Asia/Kolkata"),
    Country("US", 14, ("73.0.0.0/8", "24.0.0.0/12", "71.192.0.0/12", "67.160.0.0/11"),
            "en-US,en;q=0.9", (("English", 0.95), ("Hindi", 0.05)), "America/New_York"),
    Country("GB", 6, ("86.128.0.0/10", "2.24.0.0/13", "82.0.0.0/12"),
            "en-GB,en;q=0.9", (("English", 0.9), ("Hindi", 0.1)), "Europe/London"),
    Country("DE", 5, ("84.128.0.0/10", "87.128.0.0/10", "91.0.0.0/10", "79.192.0.0/10"),
            "de-DE,de;q=0.9,en;q=0.8", (("English", 1.0),), "Europe/Berlin"),
    Country("BR", 6, ("177.0.0.0/11", "189.0.0.0/11", "179.96.0.0/12"),
            "pt-BR,pt;q=0.9,en;q=0.7", (("English", 1.0),), "America/Sao_Paulo"),
    Country("JP", 4, ("153.128.0.0/10", "180.0.0.0/10", "219.96.0.0/11"),
            "ja-JP,ja;q=0.9,en;q=0.6", (("English", 1.0),), "Asia/Tokyo"),
    Country("KE", 5, ("41.89.0.0/16", "197.248.0.0/16", "154.122.0.0/16"),
            "en-KE,en;q=0.9,sw;q=0.8", (("English", 1.0),), "Africa/Nairobi"),
    Country("FR", 4, ("86.192.0.0/10", "78.192.0.0/10"),
            "fr-FR,fr;q=0.9,en;q=0.7", (("English", 1.0),), "Europe/Paris"),
    Country("AU", 4, ("101.160.0.0/11", "110.140.0.0/14", "120.144.0.0/12"),
            "en-AU,en;q=0.9", (("English", 0.9), ("Tamil", 0.1)), "Australia/Sydney"),
    Country("ID", 7, ("36.64.0.0/11", "114.120.0.0/13"),
            "id-ID,id;q=0.9,en;q=0.7", (("English", 1.0),), "Asia/Jakarta"),
)

# Crawler operators' networks and the country GeoLite2 puts them in.
BOT_NETWORKS: dict[str, tuple[tuple[str, ...], str]] = {
    "google": (("66.249.64.0/20",), "US"),
    "microsoft": (("157.55.39.0/24", "40.77.167.0/24"), "US"),
    "yandex": (("5.255.253.0/24",), "RU"),
    "ahrefs": (("54.36.148.0/24",), "FR"),
}

IPS_PER_COUNTRY = 64


def _draw(networks: tuple[str, ...], count: int, rng: random.Random) -> list[str]:
    nets = [ipaddress.ip_network(n) for n in networks]
    drawn = []
    for _ in range(count):
        net = rng.choice(nets)
        drawn.append(str(net.network_address + rng.randrange(1, net.num_addresses - 1)))
    return drawn


def _open_reader(mmdb: str | None):  # noqa: ANN202 - geoip2 is optional here
    if not mmdb or not Path(mmdb).exists():
        return None
    try:
        import geoip2.database

        return geoip2.database.Reader(mmdb)
    except Exception:  # noqa: BLE001 - unreadable database: fall back to unchecked IPs
        return None


def _country_of(reader, ip: str) -> str | None:  # noqa: ANN001
    try:
        return reader.city(ip).country.iso_code
    except Exception:  # noqa: BLE001 - not found, or a broken database
        return None


@dataclass
class IpPool:
    """Verified client IPs: per country code, and per crawler operator."""

    by_country: dict[str, list[str]]
    bots: dict[str, list[str]]
    verified: bool

    def countries(self) -> list[Country]:
        return [c for c in COUNTRIES if self.by_country.get(c.code)]


def ip_pool(mmdb: str | None, rng: random.Random, per_country: int = IPS_PER_COUNTRY) -> IpPool:
    """Draw IPs from each country's networks and keep those the mmdb maps to that country.

    Without a readable database the drawn IPs are used unchecked (``verified`` False).
    """
    reader = _open_reader(mmdb)
    by_country = {c.code: _draw(c.networks, per_country, rng) for c in COUNTRIES}
    bots = {op: _draw(nets, per_country // 4, rng) for op, (nets, _) in BOT_NETWORKS.items()}
    if reader is None:
        return IpPool(by_country, bots, verified=False)
    with reader:
        checked = {code: [ip for ip in ips if _country_of(reader, ip) == code] for code, ips in by_country.items()}
        checked_bots = {op: [ip for ip in ips if _country_of(reader, ip) == BOT_NETWORKS[op][1]] or ips
                        for op, ips in bots.items()}
    if not any(checked.values()):  # a database that knows none of them (e.g. a test mmdb)
        return IpPool(by_country, bots, verified=False)
    return IpPool(checked, checked_bots, verified=True)
