"""pipeline.privacy and where the workers apply it: anonymised IPs (dead letters included),
rounded browser positions, and what anonymisation costs GeoIP on MaxMind's test databases."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from pipeline.enrich import enrich_events
from pipeline.enrich.geo import GeoLocator
from pipeline.events import dead_letter_id, new_event_id
from pipeline.privacy import anonymize_ip, anonymize_ip_or_none, round_coordinate, round_position
from tests.conftest import GEOIP_DIR


@pytest.fixture(scope="module")
def geo() -> GeoLocator:
    return GeoLocator(str(GEOIP_DIR / "GeoIP2-City-Test.mmdb"))


def test_anonymising_is_idempotent() -> None:
    for ip in ("81.2.69.142", "2a02:c7f:7e03:9c00::1"):
        assert anonymize_ip(anonymize_ip(ip)) == anonymize_ip(ip)


def test_the_hooks_version_never_raises_and_never_keeps_garbage() -> None:
    assert anonymize_ip_or_none("203.0.113.77") == "203.0.113.0"
    assert anonymize_ip_or_none("1.2.3.999") is None
    assert anonymize_ip_or_none("not an address") is None


@pytest.mark.parametrize(("value", "decimals", "rounded"), [
    (12.971612, 2, 12.97), (-33.868820, 2, -33.87), (51.5, 2, 51.5), (12.971612, 0, 13.0),
    (12.971612, -1, 12.971612), (None, 2, None),
])
def test_round_coordinate(value: float | None, decimals: int, rounded: float | None) -> None:
    assert round_coordinate(value, decimals) == rounded


def test_round_position_leaves_other_events_and_the_callers_dict_alone() -> None:
    plain = {"kind": "pageview"}
    assert round_position(plain, 2) is plain
    located = {"kind": "location", "latitude": 1.23456, "longitude": 2.34567}
    assert round_position(located, 2) == {"kind": "location", "latitude": 1.23, "longitude": 2.35}
    assert located["latitude"] == 1.23456


def test_geoip_after_anonymisation_on_maxminds_test_database(geo: GeoLocator) -> None:
    """The trade-off docs/retention.md describes: a /24 network is still located, a smaller one
    is not. (MaxMind's test data puts London in a /31 and Milton in a /29; real databases
    locate nearly all of the address space in /24 or larger networks.)"""
    assert geo.locate(anonymize_ip("175.16.199.37"))["city"] == "Changchun"  # 175.16.199.0/24
    assert geo.locate(anonymize_ip("81.2.69.142"))["country"] is None  # 81.2.69.142/31
    assert geo.locate(anonymize_ip("216.160.83.56"))["country"] is None  # 216.160.83.56/29


def page_view(**changes: object) -> dict:
    return {"event_id": new_event_id(), "source": "middleware", "path_info": "/", "visited_by": "AnonymousUser",
            "user_agent": "", "ip_address": "81.2.69.142", "datetime": time.time(), **changes}


def test_a_dead_letter_keeps_only_the_anonymised_ip_and_the_id_the_spool_check_looks_for() -> None:
    line = json.dumps(page_view(path_info="relative"))  # invalid: dead-lettered at enrich
    _docs, [letter] = enrich_events([line], None, anonymize=True)
    shipped = json.loads(letter["raw"])  # a spool line is kept as the JSON text of that line
    assert "81.2.69.142" not in letter["raw"] and json.loads(shipped)["ip_address"] == "81.2.69.0"
    assert letter["_id"] == dead_letter_id(line)


def test_without_anonymisation_the_dead_letter_is_the_line_as_shipped() -> None:
    line = json.dumps(page_view(path_info="relative"))
    _docs, [letter] = enrich_events([line], None, anonymize=False)
    assert "81.2.69.142" in letter["raw"] and letter["_id"] == dead_letter_id(line)


def test_browser_positions_are_rounded_by_the_worker_too() -> None:
    event = {"kind": "js.location", "event_id": uuid.uuid4().hex, "page_view_id": uuid.uuid4().hex, "path": "/",
             "ts": int(time.time() * 1000), "latitude": 12.971612, "longitude": 77.594563, "source": "js",
             "visited_by": "AnonymousUser", "ip_address": None, "received": time.time()}
    [write], dead = enrich_events([event], None, coordinate_precision=2)
    assert dead == []
    assert (write["set"]["latitude"], write["set"]["longitude"], write["set"]["city"]) == (12.97, 77.59, "Bengaluru")
