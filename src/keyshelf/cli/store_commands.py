"""Commands on a whole namespace or store: keys, count, stats, namespaces,
clear-namespace, cleanup."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator

import click

from keyshelf.keys import check_namespace

from .context import common_options, current
from .exit_codes import OK, CommandUsageError
from .help import examples, keys_text
from .output import (
    json_text,
    progress,
    stderr_is_terminal,
    stdin_is_terminal,
    stdout_is_terminal,
)

__all__ = ["COMMANDS"]

#: Keys written to stdout per write call and per progress update while
#: listing: few enough to stay responsive, many enough to stay cheap.
_CHUNK = 1000


def _chunks(items: Iterator[str]) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(items, _CHUNK)):
        yield chunk


@click.command(
    epilog=examples(
        "keyshelf keys",
        "keyshelf keys 'user:*'",
        "keyshelf keys 'app.**' --separator .",
        "keyshelf keys --limit 10 --json",
    )
)
@click.argument("pattern", required=False)
@click.option("--limit", type=click.IntRange(min=1), help="Print at most this many keys.")
@common_options()
def keys(pattern: str | None, limit: int | None) -> int:
    """List the keys matching PATTERN (default: every key).

    Keys come sorted and streamed, so huge stores list in constant memory.
    Without PATTERN every key is listed, whatever --separator says.

    Patterns are Redis globs (* ? [abc] [^a] [a-z], \\ escapes); with
    --separator, * and ? stay inside one segment and ** spans segments.
    """
    inv = current()
    # A bar only helps when the keys go somewhere else (a file, a pipe) while
    # a person watches the terminal; on a terminal the keys are the progress.
    watch = stderr_is_terminal() and not stdout_is_terminal()
    inv.check_pattern(pattern)
    with inv.store(create=False) as store:
        # No pattern is every key: the store's own default, not "*" (which
        # is one segment only when a separator is set).
        stream = store.iter_keys() if pattern is None else store.iter_keys(pattern)
        if limit is not None:
            stream = itertools.islice(stream, limit)
        # Pull the first batch before printing anything, so a bad pattern
        # fails cleanly instead of after a half-written JSON array.
        batches = _chunks(iter(stream))
        first = next(batches, [])
        total = None
        if watch:
            total = store.key_count() if pattern is None else store.key_count(pattern)
            total = total if limit is None else min(total, limit)
        with progress("Listing keys", total) as update:
            out = sys.stdout
            done = 0
            # --json is one document on one line, streamed: "[", the keys
            # separated by commas, "]" and the newline at the very end.
            if inv.as_json:
                out.write("[")
            for index, batch in enumerate(itertools.chain([first], batches)):
                if not batch:
                    break
                if inv.as_json:
                    sep = "" if index == 0 else ","
                    out.write(sep + ",".join(json_text(key) for key in batch))
                else:
                    out.write("\n".join(batch) + "\n")
                done += len(batch)
                update(done, total)
            if inv.as_json:
                out.write("]\n")
            out.flush()
    return OK


@click.command(epilog=examples("keyshelf count", "keyshelf count 'session:*'"))
@click.argument("pattern", required=False)
@common_options()
def count(pattern: str | None) -> int:
    """Count the keys matching PATTERN (default: every key, whatever --separator says)."""
    inv = current()
    inv.check_pattern(pattern)
    with inv.store(create=False) as store:
        n = store.key_count() if pattern is None else store.key_count(pattern)
    inv.out.result(n, str(n))
    return OK


@click.command(epilog=examples("keyshelf stats", "keyshelf stats --namespace tenant1 --json"))
@common_options()
def stats() -> int:
    """Show the key counts of the namespace.

    total_keys (expired but not yet purged included), active_keys,
    expired_keys and keys_with_ttl.
    """
    inv = current()
    with inv.store(create=False) as store:
        figures = store.stats()
        name = store.namespace_name
    if inv.as_json:
        inv.out.json(json_text(figures))
    else:
        rows = [(stat, str(value)) for stat, value in figures.items()]
        inv.out.table(["stat", "value"], rows, title=f"namespace {name!r}")
    return OK


@click.command(epilog=examples("keyshelf namespaces", "keyshelf namespaces --json"))
@common_options()
def namespaces() -> int:
    """List the namespaces with their key counts.

    Only namespaces that hold at least one live key are listed.
    """
    inv = current()
    with inv.store(create=False) as store:
        names = store.list_namespaces()
        sizes = {name: store.namespace(name).size() for name in names}
    if inv.as_json:
        inv.out.json(json_text(sizes))
    else:
        inv.out.table(["namespace", "keys"], [(n, str(c)) for n, c in sizes.items()])
    return OK


@click.command(
    "clear-namespace",
    epilog=examples("keyshelf clear-namespace tenant1 --yes", "keyshelf clear-namespace"),
)
@click.argument("name", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options()
def clear_namespace(name: str | None, yes: bool) -> int:
    """Delete every key of a namespace.

    NAME defaults to --namespace. Prints how many keys were removed.

    Asks for confirmation on a terminal; elsewhere --yes is required.
    """
    inv = current()
    if name is not None:
        check_namespace(name)
    with inv.store(create=False) as store:
        target = name or store.namespace_name
        if not yes:
            if not stdin_is_terminal():
                raise CommandUsageError(
                    f"refusing to clear namespace {target!r} without --yes "
                    "(stdin is not a terminal)"
                )
            click.confirm(f"Delete every key of namespace {target!r}?", abort=True, err=True)
        removed = store.clear_namespace(target)
    inv.out.result(removed, f"removed {keys_text(removed)} from namespace {target!r}")
    return OK


@click.command(epilog=examples("keyshelf cleanup", "keyshelf cleanup --namespace tenant1"))
@common_options()
def cleanup() -> int:
    """Purge expired keys now; print how many.

    Expired keys are invisible anyway; this reclaims their space. Backends
    with native expiry (Redis) purge by themselves and usually report 0.
    """
    inv = current()
    with inv.store(create=False) as store, progress("Deleting expired keys", None):
        removed = store.delete_expired()
    inv.out.result(removed, f"removed {keys_text(removed, 'expired')}")
    return OK


COMMANDS: list[click.Command] = [keys, count, stats, namespaces, clear_namespace, cleanup]
