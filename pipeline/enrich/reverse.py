"""Coordinates -> country, region, city, offline.

reverse_geocode ships its own GeoNames-derived data and answers from a k-d tree
in memory: no web API is ever called. The tree is built on first use (about
half a second), once per worker process.
"""

from __future__ import annotations

from typing import Any

import reverse_geocode


def reverse_locate(latitude: float, longitude: float) -> dict[str, Any]:
    """Location fields of website_logs for a browser-reported position."""
    place = reverse_geocode.get((latitude, longitude))
    return {
        "country": place.get("country"),
        "country_code": place.get("country_code"),
        "region": place.get("state"),
        "city": place.get("city"),
        "latitude": latitude,
        "longitude": longitude,
    }
