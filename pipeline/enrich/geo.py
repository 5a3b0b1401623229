"""IP address -> country, region, city, latitude, longitude (geoip2).

One Reader per process, opened after fork (mmap'd database, cheap lookups).
A missing or corrupt database is reported once, and lookups then return nulls
instead of failing every event.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import geoip2.database
import geoip2.errors
import maxminddb.errors

from pipeline.privacy import anonymize_ip  # noqa: F401 - re-exported: one implementation

log = logging.getLogger(__name__)

# An address every real City database knows; used to find corrupt data sections
# at start (geoip2 opens a corrupt file happily and fails on the first lookup).
_PROBE_IPS = ("81.2.69.142", "8.8.8.8", "1.1.1.1")


def is_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return addr.is_global and not addr.is_multicast


class GeoLocator:
    EMPTY: dict[str, Any] = {
        "country": None,
        "country_code": None,
        "region": None,
        "city": None,
        "latitude": None,
        "longitude": None,
    }

    def __init__(self, path: str, quiet: bool = False) -> None:
        """Open ``path``. Problems are logged unless ``quiet`` (worker pool processes
        stay quiet: the worker's main process reports them once at start)."""
        self.path = path
        self.quiet = quiet
        self.error: str | None = None
        self._reader: geoip2.database.Reader | None = None
        if not path:
            self._disable("EVENTLOG_GEOIP_CITY_DB is not set")
            return
        try:
            self._reader = geoip2.database.Reader(path)
            self._probe()
        except FileNotFoundError:
            self._disable(f"GeoIP database {path} does not exist")
        except (ValueError, OSError, maxminddb.errors.InvalidDatabaseError) as exc:
            self._disable(f"GeoIP database {path} cannot be read: {exc}")

    def _probe(self) -> None:
        for ip in _PROBE_IPS:
            try:
                self._reader.city(ip)
            except geoip2.errors.AddressNotFoundError:
                continue

    def _disable(self, reason: str) -> None:
        self.error = reason
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        if not self.quiet:
            log.error("eventlog: %s; events are stored without location", reason)

    @property
    def available(self) -> bool:
        return self._reader is not None

    def locate(self, ip: str | None) -> dict[str, Any]:
        """Location fields for an IP; all None for private, reserved or unknown IPs."""
        if self._reader is None or not ip:
            return dict(self.EMPTY)
        try:
            if not is_public(ip):
                return dict(self.EMPTY)
            city = self._reader.city(ip)
        except (ValueError, geoip2.errors.AddressNotFoundError):
            return dict(self.EMPTY)
        except maxminddb.errors.InvalidDatabaseError as exc:
            self._disable(f"GeoIP database {self.path} is corrupt: {exc}")
            return dict(self.EMPTY)
        return {
            "country": city.country.name,
            "country_code": city.country.iso_code,
            "region": city.subdivisions.most_specific.name,
            "city": city.city.name,
            "latitude": city.location.latitude,
            "longitude": city.location.longitude,
        }
