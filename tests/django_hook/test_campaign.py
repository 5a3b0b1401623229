"""The hook keeps a request's utm_source / utm_medium / utm_campaign (the rollups' campaign
dimensions) and nothing else of its query string; the workers' validation keeps them too."""

from __future__ import annotations

import time
import uuid

from django.test import Client

from django_hook.request_info import MAX_UTM, campaign
from pipeline.events import validate_page_view


def test_campaign_parameters_only() -> None:
    assert campaign("") == {}
    assert campaign("q=python&page=2") == {}
    assert campaign("utm_source=newsletter&utm_medium=email&utm_campaign=dec%202026&token=s3cret&utm_term=x") == {
        "utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "dec 2026"}
    assert campaign("utm_source=a&utm_source=b&utm_medium=") == {"utm_source": "a"}  # first wins; blank dropped
    assert campaign("utm_campaign=" + "x" * 500) == {"utm_campaign": "x" * MAX_UTM}


def test_a_page_view_from_a_campaign_link_is_spooled_with_it(spool_events) -> None:  # noqa: ANN001
    client = Client(HTTP_HOST="127.0.0.1")
    assert client.get("/?utm_source=newsletter&utm_medium=email&utm_campaign=dec&session=secret").status_code == 200
    client.get("/tutorial-search/?q=python")
    landing, search = [e for e in spool_events() if e.get("source") == "middleware"][-2:]
    assert {k: landing.get(k) for k in ("utm_source", "utm_medium", "utm_campaign")} == {
        "utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "dec"}
    assert "secret" not in str(landing)
    assert not any(k.startswith("utm_") for k in search)


def test_validation_keeps_the_campaign() -> None:
    doc = validate_page_view({"event_id": uuid.uuid4().hex, "path_info": "/", "visited_by": "AnonymousUser",
                              "datetime": time.time(), "utm_source": "newsletter", "utm_medium": "email"})
    assert (doc["utm_source"], doc["utm_medium"], doc["utm_campaign"]) == ("newsletter", "email", None)
