"""manage.py eventlog_export --username NAME | --visitor-id ID [--output FILE]

Everything eventlog stored about one learner, as JSON lines (one document per line:
``{"collection": ..., "document": ...}``): page views, exit links, tutorial progress and
the dead letters that name them (pipeline/erasure.py).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_hook.management.commands._learner import add_learner_arguments, database, learner
from pipeline.erasure import export


class Command(BaseCommand):
    help = "Export one learner's eventlog data as JSON lines (stdout or --output)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_learner_arguments(parser)
        parser.add_argument("--output", help="write to this file instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        db = database()
        who = learner(db, options)
        # A file, or the command's stdout (OutputWrapper: it ends each write with a newline).
        out = open(options["output"], "w", encoding="utf-8") if options.get("output") else None  # noqa: SIM115
        counts: dict[str, int] = {}
        try:
            for row in export(db, who):
                line = json.dumps(row, ensure_ascii=False, sort_keys=True)
                if out is None:
                    self.stdout.write(line)
                else:
                    out.write(line + "\n")
                counts[row["collection"]] = counts.get(row["collection"], 0) + 1
        finally:
            if out is not None:
                out.close()
        # The summary goes to stderr, so stdout stays pure JSON lines.
        self.stderr.write(f"exported {sum(counts.values())} documents {counts or ''}".rstrip())
