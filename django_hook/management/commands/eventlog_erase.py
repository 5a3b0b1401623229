"""manage.py eventlog_erase --username NAME | --visitor-id ID [--dry-run] [--again-for MINUTES]

Deletes one learner's page views, exit links, tutorial progress, the dead letters that name
them and the rollups' visits of theirs, then recomputes the rollups of the days they were in
(pipeline/erasure.py). Events still on their way (a web process's spool, the broker, a
browser's offline queue) are stored after it ran: ``--again-for`` repeats the erase every
``--every`` seconds for that many minutes (docs/retention.md says how long is enough).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_hook.management.commands._learner import add_learner_arguments, database, learner
from pipeline.erasure import Learner, erase


class Command(BaseCommand):
    help = "Erase one learner's eventlog data (and recompute the rollups of their days)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_learner_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; change nothing")
        parser.add_argument("--again-for", type=float, default=0.0, metavar="MINUTES",
                            help="erase again, every --every seconds, for this many minutes (events in flight)")
        parser.add_argument("--every", type=float, default=60.0, metavar="SECONDS")

    def handle(self, *args: Any, **options: Any) -> None:
        db = database()
        who = learner(db, options)
        self._report(erase(db, who, dry_run=options["dry_run"]))
        if options["dry_run"] or options["again_for"] <= 0:
            return
        deadline = time.monotonic() + options["again_for"] * 60
        while time.monotonic() < deadline:
            time.sleep(min(options["every"], max(0.0, deadline - time.monotonic())))
            # The visitor ids found at first (their page views are gone now, so they cannot be
            # found again) and any that a late logged-in page view brings.
            who = Learner(who.username, who.visitor_ids | learner(db, options).visitor_ids)
            result = erase(db, who)
            if any(result["deleted"].values()):
                self._report(result)

    def _report(self, result: dict[str, Any]) -> None:
        verb = "would delete" if result.get("dry_run") else "deleted"
        total = sum(result["deleted"].values())
        self.stdout.write(f"{verb} {total} documents {result['deleted'] or ''}".rstrip())
        if result["days"]:
            done = "" if result.get("dry_run") else f"; rollups recomputed for {len(result['recomputed'])} of them"
            self.stdout.write(f"days with their events: {', '.join(result['days'])}{done}")
