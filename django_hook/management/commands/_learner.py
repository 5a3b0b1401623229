"""What eventlog_export and eventlog_erase share: who the learner is, and the database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_hook.conf import eventlog_settings
from pipeline.erasure import Learner, find_learner
from pipeline.store import process_client


def add_learner_arguments(parser: CommandParser) -> None:
    parser.add_argument("--username", help="the learner's username (visited_by, tutorial progress)")
    parser.add_argument("--visitor-id", help=f"a visitor id (the {eventlog_settings().visitor_cookie} cookie)")
    parser.add_argument("--no-linked", action="store_true",
                        help="only what names the username: leave out the anonymous page views made with "
                             "the visitor ids their logged-in page views carry")


def database() -> Any:
    s = eventlog_settings()
    return process_client(s.mongo_url)[s.mongo_db]


def learner(db: Any, options: dict[str, Any]) -> Learner:
    if not options.get("username") and not options.get("visitor_id"):
        raise CommandError("give --username or --visitor-id (or both)")
    return find_learner(db, options.get("username"), options.get("visitor_id"), linked=not options["no_linked"])
