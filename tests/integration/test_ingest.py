"""End to end: HTTP request -> middleware -> spool -> Celery -> MongoDB, for real.

Every test tags its traffic with a unique token so that tests sharing one
server only ever count their own documents.
"""

from __future__ import annotations

import re
import signal
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from pipeline.events import new_event_id
from pipeline.spool import spool_size
from tests.helpers.pipeline import wait_until
from tests.helpers.tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
WATCH = "/watch/BASH/Basics-of-Shell-Scripting/English/"


def token() -> str:
    return uuid.uuid4().hex[:12]


def stored(mongo, query: dict) -> list[dict]:  # noqa: ANN001
    return list(mongo.database.website_logs.find(query))


def wait_stored(mongo, query: dict, count: int, timeout: float = 60) -> list[dict]:  # noqa: ANN001
    wait_until(lambda: mongo.database.website_logs.count_documents(query) >= count, timeout,
               f"{count} documents matching {query}")
    return stored(mongo, query)


def raw_event(path: str, **fields: object) -> dict:
    """A raw page view as the middleware writes it."""
    return {
        "event_id": new_event_id(), "source": "middleware", "path_info": path, "visited_by": "AnonymousUser",
        "user_agent": CHROME_WINDOWS, "ip_address": "81.2.69.142",
        "datetime": datetime.now(UTC).timestamp(), "first_time_visit": True, "method": "GET",
        "referrer": "", "page_title": "", "view_args": [], "view_kwargs": {}, "post_data": None, **fields,
    }


def publish(broker_url: str, events: list) -> None:
    from tasks.enrich import enrich_batch

    with enrich_batch.app.connection_for_write(broker_url) as conn:
        enrich_batch.apply_async(args=[events], connection=conn)


def login_and_visit(pipeline, tag: str) -> requests.Session:  # noqa: ANN001
    session = requests.Session()
    session.headers.update({"User-Agent": CHROME_WINDOWS, "X-Forwarded-For": "81.2.69.142"})
    session.get(pipeline.url("/accounts/login/"), timeout=10)
    csrf = session.cookies["csrftoken"]
    answer = session.post(
        pipeline.url("/accounts/login/"),
        data={"username": "learner1", "password": "demo-password", "csrfmiddlewaretoken": csrf, "tag": tag},
        headers={"Referer": pipeline.url("/accounts/login/")}, timeout=10, allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:500]
    answer = session.get(pipeline.url(WATCH), headers={"Referer": referrer(tag)}, timeout=10)
    assert answer.status_code == 200
    return session


def referrer(tag: str) -> str:
    return f"https://example.org/q?{tag}"


def check_watch_document(doc: dict, tag: str) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", doc["_id"])
    assert doc["path_info"] == WATCH
    assert doc["event_name"] == "event.video.watch"
    assert doc["visited_by"] == "learner1"
    assert doc["ip_address"] == "81.2.69.142"
    assert doc["method"] == "GET"
    assert abs(doc["datetime"] - datetime.now(UTC)) < timedelta(minutes=2)
    assert doc["referrer"] == referrer(tag)
    assert doc["page_title"] == ""
    assert (doc["browser_family"], doc["browser_version"]) == ("Chrome", "120.0.0")
    assert (doc["os_family"], doc["os_version"]) == ("Windows", "10")
    assert doc["device_type"] == "PC"
    assert doc["first_time_visit"] is False  # the login page set the visitor cookie
    assert (doc["country"], doc["region"], doc["city"]) == ("United Kingdom", "England", "London")
    assert doc["latitude"] == pytest.approx(51.5142) and doc["longitude"] == pytest.approx(-0.0931)
    assert doc["view_args"] == []
    assert doc["view_kwargs"] == {"foss": "BASH", "tutorial": "Basics-of-Shell-Scripting", "language": "English"}
    assert doc["post_data"] is None
    assert doc["source"] == "middleware"
    assert doc["user_agent"] == CHROME_WINDOWS
    assert doc["stored_at"] >= doc["datetime"]


def check_login_document(doc: dict) -> None:
    assert doc["method"] == "POST"
    assert doc["event_name"] == "event.account.login"
    assert doc["post_data"]["username"] == "learner1"
    assert doc["post_data"]["password"] == "[REDACTED]"
    assert doc["post_data"]["csrfmiddlewaretoken"] == "[REDACTED]"
    assert "demo-password" not in str(doc)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_http_request_becomes_one_complete_document(make_pipeline, mongo, broker, rabbit_url):  # noqa: ANN001
    pipeline = make_pipeline(broker_url=rabbit_url if broker == "rabbitmq" else None)
    pipeline.worker()
    pipeline.web()
    tag = token()
    login_and_visit(pipeline, tag)
    watch = wait_stored(mongo, {"referrer": referrer(tag)}, 1)
    assert len(watch) == 1, watch
    check_watch_document(watch[0], tag)
    login = wait_stored(mongo, {"post_data.tag": tag}, 1)
    assert len(login) == 1
    check_login_document(login[0])


def test_same_event_delivered_twice_is_stored_once(make_pipeline, mongo):  # noqa: ANN001
    pipeline = make_pipeline()
    pipeline.worker()
    event = raw_event(f"/dup/{token()}/")
    publish(pipeline.broker_url, [event])
    publish(pipeline.broker_url, [event, raw_event(event["path_info"])])
    wait_stored(mongo, {"path_info": event["path_info"]}, 2)
    wait_until(lambda: "(1 already stored" in pipeline.logs(), 20, "the duplicate to be seen")
    assert mongo.database.website_logs.count_documents({"_id": event["event_id"]}) == 1
    assert mongo.database.website_logs.count_documents({"path_info": event["path_info"]}) == 2


def test_invalid_event_is_dead_lettered_and_the_next_is_stored(make_pipeline, mongo):  # noqa: ANN001
    pipeline = make_pipeline()
    pipeline.worker()
    tag = token()
    bad = raw_event(f"/bad/{tag}/", ip_address="not-an-ip", view_kwargs={"$where": "1"})
    good = raw_event(f"/good/{tag}/")
    publish(pipeline.broker_url, [bad])
    publish(pipeline.broker_url, [good])
    wait_stored(mongo, {"path_info": good["path_info"]}, 1)
    letters = list(mongo.database.dead_letters.find({"raw": {"$regex": tag}}))
    assert len(letters) == 1
    assert "ip_address" in letters[0]["reason"] and "$where" in letters[0]["reason"]
    assert mongo.database.website_logs.count_documents({"path_info": bad["path_info"]}) == 0


def test_broker_unreachable_events_wait_in_spool_then_ship_once(make_pipeline, mongo, redis_url):  # noqa: ANN001
    pipeline = make_pipeline()
    host_port = redis_url.split("//")[1].split("/")[0]
    host, port = host_port.split(":")
    proxy = TcpProxy(host, int(port))
    pipeline.worker()
    pipeline.web(broker_url=proxy.url("redis", "/" + redis_url.rsplit("/", 1)[1]), workers=1)
    proxy.cut()
    tag = token()
    for i in range(30):
        assert pipeline.get(f"/tutorial-search/?i={i}", headers={"Referer": tag}).status_code == 200
    wait_until(lambda: spool_size(pipeline.spool_dir)["bytes"] > 0, 10, "events in the spool")
    assert mongo.database.website_logs.count_documents({"referrer": tag}) == 0
    proxy.start()
    docs = wait_stored(mongo, {"referrer": tag}, 30)
    assert len({d["_id"] for d in docs}) == len(docs) == 30
    wait_until(lambda: spool_size(pipeline.spool_dir)["segments"] == 0, 10, "the spool to empty")
    proxy.cut()


def test_web_process_killed_after_answering_loses_nothing(make_pipeline, mongo, redis_url):  # noqa: ANN001
    pipeline = make_pipeline()
    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    proxy = TcpProxy(host, int(port))
    broker_via_proxy = proxy.url("redis", "/" + redis_url.rsplit("/", 1)[1])
    pipeline.worker()
    web = pipeline.web(broker_url=broker_via_proxy, workers=2)
    proxy.cut()  # nothing can ship: every answered request is only in the spool
    tag = token()
    for i in range(40):
        assert pipeline.get(f"/cdcontent/?i={i}", headers={"Referer": tag}).status_code == 200
    web.kill(signal.SIGKILL)
    web.popen.wait(10)
    proxy.start()
    pipeline.web(broker_url=broker_via_proxy, workers=1)  # a new process adopts the dead ones' spools
    docs = wait_stored(mongo, {"referrer": tag}, 40)
    assert len(docs) == 40 and len({d["_id"] for d in docs}) == 40
    proxy.cut()


def test_mongodb_down_during_flush_loses_nothing(make_pipeline, mongo):  # noqa: ANN001
    pipeline = make_pipeline()
    host, port = mongo.url.split("//")[1].split("/")[0].split(":")
    proxy = TcpProxy(host, int(port))
    pipeline.worker(mongo_url=proxy.url("mongodb"))
    proxy.cut()
    tag = token()
    events = [raw_event(f"/outage/{tag}/{i}") for i in range(50)]
    publish(pipeline.broker_url, events[:25])
    publish(pipeline.broker_url, events[25:])
    wait_until(lambda: "bulk write failed" in pipeline.logs(), 30, "the flush to hit the outage")
    proxy.start()
    docs = wait_stored(mongo, {"path_info": {"$regex": f"^/outage/{tag}/"}}, 50)
    assert len(docs) == 50
    proxy.cut()


def test_store_worker_killed_mid_batch_loses_nothing(make_pipeline, mongo):  # noqa: ANN001
    # Short Redis visibility timeout so the killed worker's unacknowledged
    # messages come back within the test.
    pipeline = make_pipeline(visibility_timeout=4)
    host, port = mongo.url.split("//")[1].split("/")[0].split(":")
    proxy = TcpProxy(host, int(port))
    pipeline.worker(queues="eventlog.enrich")
    store = pipeline.worker(queues="eventlog.store", mongo_url=proxy.url("mongodb"))
    proxy.cut()  # the flush blocks, holding its messages unacknowledged
    tag = token()
    events = [raw_event(f"/killed/{tag}/{i}") for i in range(60)]
    for chunk in range(3):
        publish(pipeline.broker_url, events[chunk * 20:(chunk + 1) * 20])
    wait_until(lambda: "bulk write failed" in pipeline.logs(), 30, "the store worker to hold the batch")
    store.kill(signal.SIGKILL)
    store.popen.wait(10)
    proxy.start()
    pipeline.worker(queues="eventlog.store")
    docs = wait_stored(mongo, {"path_info": {"$regex": f"^/killed/{tag}/"}}, 60, timeout=180)
    assert len(docs) == 60
    proxy.cut()
