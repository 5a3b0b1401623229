"""The operator's command line: ``eventlog ...`` (console script) or ``python -m tasks ...``.

    eventlog status                    the pipeline as health/ sees it (exit 1 when not ok)
    eventlog dead-letters list         what could not be stored, and why
    eventlog dead-letters replay ...   send letters back through the pipeline after a fix
    eventlog stack up|down|status      the demo stack (from a checkout of the repository only)

Settings are the EVENTLOG_* environment variables, as for the workers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from pipeline import deadletters
from pipeline.config import Settings, safe_url
from pipeline.store import process_client
from tasks.resources import settings


def _db(s: Settings) -> Any:
    return process_client(s.mongo_url)[s.mongo_db]


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """eventlog's operator commands (settings: the EVENTLOG_* environment variables)."""


# ---------------------------------------------------------------- status


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _print_status(s: Settings, details: dict[str, Any]) -> None:
    click.echo(f"status          {details['status']}")
    click.echo(f"broker          {'answers' if details['broker'] else 'UNREACHABLE'}  {safe_url(s.broker_url)}")
    click.echo(f"store           {'answers' if details['store'] else 'UNREACHABLE'}  {safe_url(s.mongo_url)} "
               f"db {s.mongo_db}")
    spool = details["stages"]["spool"]
    click.echo(f"spool           {spool['segments']} segments, {spool['bytes']} bytes, oldest "
               f"{_age(spool['oldest_age_seconds'])}, {spool.get('shipped_unchecked', 0)} shipped awaiting check "
               f"({s.spool_dir})")
    for name, stage in details["stages"].items():
        if name == "spool":
            continue
        held = stage.get("held_by_workers")
        click.echo(f"{name:15} {stage['messages']} waiting, {'?' if held is None else held} held by workers, "
                   f"oldest {_age(stage['oldest_age_seconds'])}")
    click.echo(f"oldest waiting  {_age(details['oldest_waiting_seconds'])} (lagging beyond "
               f"{details['max_age_seconds']:.0f} s)")
    if details["store"]:
        click.echo(f"events stored   {details.get('events')}")
        click.echo(f"dead letters    {details.get('dead_letters')}")
        click.echo(f"last lag        {_age(details.get('last_lag_seconds'))}")
        click.echo(_rollups_line(details))


def _rollups_line(details: dict[str, Any]) -> str:
    age = details.get("rollups_age_seconds")
    line = f"rollups         {'never ran' if age is None else f'last run finished {_age(age)} ago'}"
    if details.get("rollups_running"):
        line += ", one running now"
    pending = details.get("rollups_pending_hours") or 0
    if pending and not details.get("rollups_running"):
        line += f", {pending} hours left unmerged by a run that stopped (the next run merges them)"
    return line


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The health/ JSON document instead of a table.")
def status(as_json: bool) -> None:
    """Queues, lag, spool and dead letters, as health/ sees them (exit status 1 when not ok)."""
    from tasks.health import health  # the broker client is loaded only for the commands that need it

    s = settings()
    healthy, details = health(s)
    if as_json:
        _echo_json(details)
    else:
        _print_status(s, details)
    sys.exit(0 if healthy else 1)


# ---------------------------------------------------------------- dead letters


@main.group("dead-letters")
def dead_letters() -> None:
    """Events that could not be stored: list them, replay them after a fix."""


STAGE = click.Choice(deadletters.STAGES)


@dead_letters.command("list")
@click.option("--stage", type=STAGE, help="Only letters of this stage.")
@click.option("--limit", default=50, show_default=True, help="At most this many, oldest first.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def list_letters(stage: str | None, limit: int, as_json: bool) -> None:
    """Dead letters, oldest first: id, stage, when, replays, whether a replay can store it, and why it failed."""
    found = deadletters.letters(_db(settings()), stage, limit)
    for letter in found:
        if as_json:
            click.echo(json.dumps(letter.summary(), default=str))
            continue
        when = letter.datetime.strftime("%Y-%m-%d %H:%M:%S") if letter.datetime else "?"
        can = "replayable" if letter.payload is not None else f"not replayable: {letter.why}"
        click.echo(f"{letter.id}  {letter.stage:6}  {when}  replays {letter.replays}  {can}")
        click.echo(f"    {letter.reason[:300]}")
    if not as_json:
        click.echo(f"{len(found)} dead letters" + (f" (limit {limit})" if len(found) == limit else ""))


def _settle(db: Any, sent: list[deadletters.Letter], wait: float) -> list[deadletters.Letter]:
    """Remove each letter whose event is stored; wait up to ``wait`` s for them; return those left."""
    deadline = time.monotonic() + wait
    pending = list(sent)
    while True:
        for letter in [x for x in pending if deadletters.is_stored(db, x)]:
            deadletters.resolve(db, letter)
            pending.remove(letter)
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.5)


@dead_letters.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every replayable letter (of --stage, up to --limit).")
@click.option("--stage", type=STAGE, help="Only letters of this stage.")
@click.option("--limit", default=1000, show_default=True, help="At most this many letters per run.")
@click.option("--wait", default=60.0, show_default=True,
              help="Seconds to wait for the replayed events to be stored (0: send and return).")
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send nothing.")
def replay(ids: tuple[str, ...], everything: bool, stage: str | None, limit: int, wait: float, dry_run: bool) -> None:
    """Send dead letters back through the pipeline (after the fix that makes them storable).

    A letter whose event is stored is removed; replaying twice stores once. Letters still
    refused stay, with their reason (exit status 1 when any is left).
    """
    if not ids and not everything:
        raise click.UsageError("name the letters to replay (ids from `eventlog dead-letters list`) or pass --all")
    db = _db(settings())
    found = deadletters.letters(db, stage, limit, list(ids) or None)
    missing = sorted(set(ids) - {letter.id for letter in found})
    for letter_id in missing:
        click.echo(f"{letter_id}: no such dead letter", err=True)
    already = [letter for letter in found if deadletters.is_stored(db, letter)]
    for letter in already:
        if not dry_run:
            deadletters.resolve(db, letter)
    unusable = [letter for letter in found if letter.payload is None]
    for letter in unusable:
        click.echo(f"{letter.id}: not replayable: {letter.why}", err=True)
    to_send = [letter for letter in found if letter.payload is not None and letter not in already]
    click.echo(f"{len(found)} letters: {len(already)} already stored (removed), {len(unusable)} not replayable, "
               f"{len(to_send)} to replay" + (" (dry run: nothing sent)" if dry_run else ""))
    if dry_run or not to_send:
        sys.exit(1 if unusable or missing else 0)
    from tasks.replay import publish_letters

    publish_letters(to_send)
    for letter in to_send:
        deadletters.mark_replayed(db, letter)
    left = _settle(db, to_send, wait)
    click.echo(f"replayed {len(to_send)}: {len(to_send) - len(left)} stored (removed), {len(left)} not stored yet"
               + (f" after {wait:.0f} s: refused again or still on the way; see `eventlog dead-letters list`"
                  if left else ""))
    sys.exit(1 if left or unusable or missing else 0)


# ---------------------------------------------------------------- the demo stack


def _stack_module() -> Any:
    """deploy.stack, from the checkout the command runs in; None from an installed package alone."""
    try:
        from deploy import stack
    except ImportError:
        checkout = Path.cwd()
        if not (checkout / "deploy" / "stack.py").is_file() or not (checkout / "demo").is_dir():
            return None
        sys.path.insert(0, str(checkout))
        from deploy import stack
    return stack


@main.command("stack")
@click.argument("action", type=click.Choice(["up", "down", "status"]))
def stack_command(action: str) -> None:
    """The local demo stack (`make up` / `make down` / `make status`): run from a checkout of eventlog."""
    stack = _stack_module()
    if stack is None:
        raise click.ClickException(
            "the demo stack is part of the eventlog repository, not of the installed package: run this from a "
            f"checkout of it (or use `make up`); {os.getcwd()} is not one. Sites run their own processes: see "
            "docs/install.md.")
    sys.exit(stack.main(["stack", action]))


if __name__ == "__main__":
    main()
