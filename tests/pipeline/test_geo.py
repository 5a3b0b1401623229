"""pipeline.enrich.geo and pipeline.enrich: locations from MaxMind's public test databases."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.enrich import enrich_events, enrich_page_view
from pipeline.enrich.geo import GeoLocator, anonymize_ip, is_public
from pipeline.enrich.useragent import parse_user_agent
from pipeline.events import new_event_id, validate_page_view
from pipeline.urlmap import FALLBACK_EVENT_NAME

# shared/ is a sibling of the repository directory (DESIGN.md section 7)
GEOIP_DIR = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "geoip"
CITY_DB = GEOIP_DIR / "GeoIP2-City-Test.mmdb"
BROKEN_DB = GEOIP_DIR / "GeoIP2-City-Test-Broken-Double-Format.mmdb"
LOCATION_FIELDS = {"country", "country_code", "region", "city", "latitude", "longitude"}
EMPTY = dict.fromkeys(LOCATION_FIELDS)

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(scope="module")
def geo() -> GeoLocator:
    assert CITY_DB.is_file(), f"GeoIP test data missing: expected {CITY_DB} (shared/ next to the repo)"
    locator = GeoLocator(str(CITY_DB))
    assert locator.available, locator.error
    return locator


def geo_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pipeline.enrich.geo"]


def test_test_data_dir_is_found_relative_to_the_repo() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert (repo / "pipeline" / "enrich" / "geo.py").is_file()
    assert GEOIP_DIR == repo.parent / "shared" / "testdata" / "geoip"
    assert CITY_DB.is_file() and BROKEN_DB.is_file()


@pytest.mark.parametrize(
    ("ip", "code", "country", "region", "city"),
    [
        ("81.2.69.142", "GB", "United Kingdom", "England", "London"),
        ("216.160.83.56", "US", "United States", "Washington", "Milton"),
        ("175.16.199.0", "CN", "China", "Jilin Sheng", "Changchun"),
    ],
)
def test_known_answers(geo: GeoLocator, ip: str, code: str, country: str, region: str, city: str) -> None:
    loc = geo.locate(ip)
    assert set(loc) == LOCATION_FIELDS
    assert loc["country_code"] == code
    assert loc["country"] == country
    assert loc["region"] == region
    assert loc["city"] == city
    assert isinstance(loc["latitude"], float) and isinstance(loc["longitude"], float)
    assert -90 <= loc["latitude"] <= 90 and -180 <= loc["longitude"] <= 180


def test_london_coordinates(geo: GeoLocator) -> None:
    loc = geo.locate("81.2.69.142")
    assert loc["latitude"] == pytest.approx(51.5, abs=0.1)
    assert loc["longitude"] == pytest.approx(-0.1, abs=0.1)


@pytest.mark.parametrize(
    "ip", ["1.2.3.4", "10.0.0.1", "127.0.0.1", "::1", "192.168.1.20", "169.254.0.1", "224.0.0.1", "", None,
           "not-an-ip"]
)
def test_unknown_private_and_bad_addresses_give_nulls(geo: GeoLocator, ip: str | None) -> None:
    loc = geo.locate(ip)
    assert loc == EMPTY
    assert "None" not in loc.values()
    assert all(v is None for v in loc.values())


def test_locate_returns_fresh_dicts(geo: GeoLocator) -> None:
    first = geo.locate("10.0.0.1")
    first["country"] = "tampered"
    assert geo.locate("10.0.0.1")["country"] is None
    assert GeoLocator.EMPTY["country"] is None


def test_is_public() -> None:
    assert is_public("81.2.69.142")
    assert is_public("2a02:c7f::1")
    for ip in ("10.0.0.1", "127.0.0.1", "::1", "172.16.5.4", "fe80::1", "224.0.0.1"):
        assert not is_public(ip), ip


@pytest.mark.parametrize("quiet", [False, True])
def test_corrupt_database(caplog: pytest.LogCaptureFixture, quiet: bool) -> None:
    caplog.set_level(logging.DEBUG)
    locator = GeoLocator(str(BROKEN_DB), quiet=quiet)
    assert locator.available is False
    assert locator.error and str(BROKEN_DB) in locator.error and "cannot be read" in locator.error
    for ip in ("81.2.69.142", "216.160.83.56", "175.16.199.0", "1.2.3.4", "10.0.0.1"):
        assert locator.locate(ip) == EMPTY
    records = geo_records(caplog)
    if quiet:
        assert records == []
    else:
        assert len(records) == 1
        assert records[0].levelno == logging.ERROR
        assert locator.error in records[0].getMessage()


def test_missing_database(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    missing = tmp_path / "no-such.mmdb"
    locator = GeoLocator(str(missing))
    assert locator.available is False
    assert locator.error == f"GeoIP database {missing} does not exist"
    assert locator.locate("81.2.69.142") == EMPTY
    assert locator.locate("216.160.83.56") == EMPTY
    records = geo_records(caplog)
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert str(missing) in records[0].getMessage()


@pytest.mark.parametrize("content", [b"", b"this is not a maxmind database" * 100])
def test_garbage_file(caplog: pytest.LogCaptureFixture, tmp_path: Path, content: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "garbage.mmdb"
    path.write_bytes(content)
    locator = GeoLocator(str(path))
    assert locator.available is False
    assert locator.error and "cannot be read" in locator.error
    assert locator.locate("81.2.69.142") == EMPTY
    assert len(geo_records(caplog)) == 1


def test_unset_path(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    locator = GeoLocator("")
    assert locator.available is False
    assert locator.error == "EVENTLOG_GEOIP_CITY_DB is not set"
    assert locator.locate("81.2.69.142") == EMPTY
    assert len(geo_records(caplog)) == 1


def test_good_database_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    locator = GeoLocator(str(CITY_DB))
    assert locator.available and locator.error is None
    locator.locate("81.2.69.142")
    locator.locate("1.2.3.4")
    assert geo_records(caplog) == []


@pytest.mark.parametrize(
    ("ip", "anonymized"),
    [
        ("81.2.69.142", "81.2.69.0"),
        ("10.1.2.255", "10.1.2.0"),
        ("1.2.3.0", "1.2.3.0"),
        ("2001:db8:abcd:1234:5678:9abc:def0:1", "2001:db8:abcd::"),
        ("2a02:c7f:7e03:9c00::1", "2a02:c7f:7e03::"),
        ("::1", "::"),
    ],
)
def test_anonymize_ip(ip: str, anonymized: str) -> None:
    assert anonymize_ip(ip) == anonymized


def test_anonymize_ip_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        anonymize_ip("not-an-ip")


# --- enrichment -------------------------------------------------------------------------


def raw(**changes: object) -> dict:
    event = {
        "event_id": new_event_id(),
        "source": "middleware",
        "path_info": "/",
        "visited_by": "AnonymousUser",
        "user_agent": CHROME_WINDOWS,
        "ip_address": "81.2.69.142",
        "datetime": 1_700_000_000.0,
        "first_time_visit": False,
        "method": "GET",
        "referrer": "",
        "page_title": "",
        "view_args": [],
        "view_kwargs": {},
        "post_data": None,
        "visitor_id": new_event_id(),
        "status_code": 200,
    }
    event.update(changes)
    return event


def test_enrich_events_mixed_batch(geo: GeoLocator) -> None:
    london = raw(path_info="/watch/BASH/Basics-of-Shell-Scripting/English/")
    milton = raw(path_info="/tutorial-search/", ip_address="216.160.83.56", user_agent=GOOGLEBOT)
    private = raw(path_info="/no/such/page/", ip_address="10.0.0.1")
    no_ip = raw(path_info="/cdcontent/", ip_address=None, user_agent="")
    bad_id = raw(event_id="nope")
    bad_path = raw(path_info="relative")
    corrupt = {"_spool_corrupt": '{"event_id": "ab'}
    not_a_dict = ["list"]
    batch = [london, bad_id, milton, private, corrupt, no_ip, bad_path, not_a_dict]

    docs, dead = enrich_events(batch, geo)

    assert [d["_id"] for d in docs] == [e["event_id"] for e in (london, milton, private, no_ip)]
    assert len(dead) == 4
    by_id = {d["_id"]: d for d in docs}

    d = by_id[london["event_id"]]
    assert d["event_name"] == "event.video.watch" and d["url_mapped"] is True
    assert (d["country"], d["country_code"], d["region"], d["city"]) == ("United Kingdom", "GB", "England", "London")
    assert d["latitude"] is not None and d["longitude"] is not None
    assert d["location_source"] == "geoip"
    assert (d["browser_family"], d["os_family"], d["device_type"], d["is_bot"]) == ("Chrome", "Windows", "PC", False)
    assert d["ip_address"] == "81.2.69.142"
    assert d["datetime"] == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert d["user_agent"] == CHROME_WINDOWS  # the raw string is kept for re-parsing

    d = by_id[milton["event_id"]]
    assert d["event_name"] == "event.tutorial.search"
    assert (d["country_code"], d["region"], d["city"]) == ("US", "Washington", "Milton")
    assert d["device_type"] == "Bot" and d["is_bot"] is True

    d = by_id[private["event_id"]]
    assert d["event_name"] == FALLBACK_EVENT_NAME and d["url_mapped"] is False
    assert {k: d[k] for k in LOCATION_FIELDS} == EMPTY
    assert d["location_source"] is None

    d = by_id[no_ip["event_id"]]
    assert d["event_name"] == "event.cdcontent.view"
    assert d["device_type"] == "Other"
    assert {k: d[k] for k in LOCATION_FIELDS} == EMPTY

    for doc in docs:
        assert "None" not in [doc[k] for k in LOCATION_FIELDS]

    assert all(letter["stage"] == "enrich" for letter in dead)
    reasons = [letter["reason"] for letter in dead]
    assert reasons[0].startswith("event_id")
    assert reasons[1].startswith("event_id: Field required")  # the corrupt spool line
    assert "_spool_corrupt" in dead[1]["raw"]
    assert reasons[2].startswith("path_info")
    assert reasons[3] == "event must be a JSON object, not list"


def test_enrich_events_dead_letter_keeps_raw(geo: GeoLocator) -> None:
    corrupt = {"_spool_corrupt": '{"event_id": "ab'}
    docs, dead = enrich_events([corrupt], geo)
    assert docs == []
    assert len(dead) == 1
    assert '{\\"event_id\\": \\"ab' in dead[0]["raw"]
    assert "event_id" in dead[0]["reason"]


def test_enrich_events_with_anonymisation(geo: GeoLocator) -> None:
    docs, dead = enrich_events([raw(ip_address="81.2.69.142"), raw(ip_address="2a02:c7f:7e03:9c00::1")], geo,
                               anonymize=True)
    assert dead == []
    assert [d["ip_address"] for d in docs] == ["81.2.69.0", "2a02:c7f:7e03::"]
    # location comes from the full address, before anonymisation
    assert docs[0]["city"] == "London"


def test_enrich_events_without_geo_gives_null_location() -> None:
    docs, dead = enrich_events([raw()], None)
    assert dead == []
    assert {k: docs[0][k] for k in LOCATION_FIELDS} == EMPTY
    assert docs[0]["browser_family"] == "Chrome"


def test_enrich_events_with_broken_geo_still_stores(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    broken = GeoLocator(str(BROKEN_DB))
    docs, dead = enrich_events([raw(), raw(ip_address="216.160.83.56")], broken)
    assert dead == []
    assert len(docs) == 2
    assert all(d["country"] is None and d["city"] is None for d in docs)
    assert len(geo_records(caplog)) == 1


def test_enrich_events_datetime_overflow_is_dead_lettered(geo: GeoLocator) -> None:
    ok = raw()
    docs, dead = enrich_events([raw(datetime=1e20), ok], geo)
    assert [d["_id"] for d in docs] == [ok["event_id"]]
    assert len(dead) == 1 and dead[0]["reason"].startswith("datetime")


def test_enrichment_does_not_poison_the_user_agent_cache(geo: GeoLocator) -> None:
    first = enrich_page_view(validate_page_view(raw()), geo)
    first["browser_family"] = "tampered"
    second = enrich_page_view(validate_page_view(raw()), geo)
    assert second["browser_family"] == "Chrome"
    assert parse_user_agent(CHROME_WINDOWS)["browser_family"] == "Chrome"


def test_enrich_events_parses_raw_spool_lines_and_dead_letters_torn_ones() -> None:
    event = raw(path_info="/cdcontent/")
    good = json.dumps(event)
    writes, dead = enrich_events([good, good[: len(good) // 2]], geo=None)
    assert len(writes) == 1 and writes[0]["_id"] == event["event_id"]
    assert len(dead) == 1 and "torn or corrupt" in dead[0]["reason"]
