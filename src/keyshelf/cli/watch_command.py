"""``keyshelf watch``: print the store's changes as they happen (docs/changes.md)."""

from __future__ import annotations

import itertools
import sys
from typing import Any

import click

from keyshelf.changes import ChangeEvent

from .context import common_options, current
from .exit_codes import OK
from .help import examples
from .output import json_text
from .values import value_json

__all__ = ["COMMANDS"]


def _value(value: Any) -> str:
    return "null" if value is None else value_json(value)


def _line(event: ChangeEvent, prev: bool) -> str:
    """One change for people: ``REVISION TYPE KEY [VALUE] [(was PREV)]``."""
    parts = [str(event.revision), event.type, json_text(event.key)]
    if event.type == "set":
        parts.append(_value(event.value))
    if prev:
        parts.append(f"(was {_value(event.prev)})")
    return " ".join(parts)


def _json(event: ChangeEvent, prev: bool) -> str:
    """One change as one JSON object (values in keyshelf's extended JSON)."""
    expires = None if event.expires_at is None else event.expires_at.isoformat()
    members = [
        f'"revision":{event.revision}',
        f'"type":{json_text(event.type)}',
        f'"namespace":{json_text(event.namespace)}',
        f'"key":{json_text(event.key)}',
        f'"value":{_value(event.value)}',
        f'"version":{json_text(event.version)}',
        f'"expires_at":{json_text(expires)}',
    ]
    if prev:
        members.append(f'"prev":{_value(event.prev)}')
    return "{" + ",".join(members) + "}"


@click.command(
    epilog=examples(
        "keyshelf watch",
        "keyshelf watch 'user:*' --prev",
        "keyshelf watch --since 0 --json",
        "keyshelf watch --since 1200 --count 10",
    )
)
@click.argument("pattern", required=False)
@click.option(
    "--since",
    type=click.IntRange(min=0),
    help="Replay every change after this revision first (default: from now).",
)
@click.option("--prev", is_flag=True, help="Show each key's value before the change too.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many changes.")
@common_options()
def watch(pattern: str | None, since: int | None, prev: bool, count: int | None) -> int:
    """Print the changes of the keys matching PATTERN until interrupted.

    One line per change: the revision, the type (set, delete, expire), the
    key and, for a set, the new value in extended JSON; with --json one JSON
    object per line. --since N first replays the recorded changes after
    revision N (so a script that remembers the last revision it printed
    misses nothing when it starts again). The store's feed must be on: open
    it once with history= (for example --url 'app.db?history=10000').
    """
    inv = current()
    inv.check_pattern(pattern)
    with inv.store(create=False) as store:
        events = store.watch(pattern, since=since, prev=prev)
        try:
            for event in itertools.islice(events, count):
                text = _json(event, prev) if inv.as_json else _line(event, prev)
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass  # the way a watch ends
        finally:
            events.close()
    return OK


COMMANDS: list[click.Command] = [watch]
