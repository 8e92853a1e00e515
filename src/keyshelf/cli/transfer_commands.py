"""Moving data: export, import (a line-oriented JSON file) and migrate (store to store).

They call :meth:`keyshelf.Store.export`, :meth:`keyshelf.Store.import_` and
:func:`keyshelf.migrate`; the file format is specified in docs/transfer.md.
A corrupt or truncated import file is a usage error (exit 2) and nothing is
written.
"""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

import click

import keyshelf

from .context import Invocation, common_options, current
from .exit_codes import OK, CommandUsageError
from .help import examples, keys_text
from .output import progress

__all__ = ["COMMANDS"]


def _stdio_allowed(inv: Invocation, what: str) -> None:
    # The shell reads its commands from stdin and shares stdout with them.
    if inv.shell is not None:
        raise CommandUsageError(
            f"give a FILE for {what} in the shell ('-' is the shell's own stream)"
        )


def _binary_stdout() -> BinaryIO:
    sys.stdout.flush()
    return sys.stdout.buffer


def _binary_stdin() -> BinaryIO:
    return sys.stdin.buffer


@click.command(
    epilog=examples(
        "keyshelf export backup.jsonl",
        "keyshelf export backup.jsonl.gz --all-namespaces   # gzip by name",
        "keyshelf export --all-namespaces > everything.jsonl",
        "keyshelf export - --namespace tenant1 | gzip > tenant1.jsonl.gz",
    )
)
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--all-namespaces", is_flag=True, help="Export every namespace, not just one.")
@common_options()
def export(file: str, all_namespaces: bool) -> int:
    """Write keys to a JSON-lines file.

    Writes the namespace (or every namespace) to FILE, one JSON record per
    line. Values keep their types, TTLs (as absolute expiry) and metadata. FILE "-"
    (the default) is stdout; then the summary goes to stderr.
    """
    inv = current()
    if file == "-":
        _stdio_allowed(inv, "export")
    with inv.store(create=False) as store, progress("Exporting", None) as update:
        destination: Any = _binary_stdout() if file == "-" else file
        written = store.export(destination, all_namespaces=all_namespaces, progress=update)
    if file == "-":
        if not inv.as_json:
            inv.out.note(f"exported {keys_text(written)}")
    else:
        inv.out.result({"exported": written}, f"exported {keys_text(written)} to {file}")
    return OK


@click.command(
    "import",
    epilog=examples(
        "keyshelf import backup.jsonl", "gunzip -c tenant1.jsonl.gz | keyshelf import -"
    ),
)
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--opaque",
    is_flag=True,
    help="Also copy records whose values this store's codec cannot decode (pickles, "
    "other codecs' tags), undecoded; without it such a file is refused.",
)
@common_options()
def import_(file: str, opaque: bool) -> int:
    """Load keys from an exported file.

    Reads records written by 'keyshelf export' from FILE ("-": stdin), with
    their types, expiry and metadata; expired records are skipped. Records of
    a one-namespace export go to --namespace (like every command); an
    --all-namespaces export restores each record to its own namespace.
    """
    inv = current()
    if file == "-":
        _stdio_allowed(inv, "import")
    with inv.store() as store, progress("Importing", None) as update:
        source: Any = _binary_stdin() if file == "-" else file
        loaded = store.import_(source, progress=update, opaque=opaque)
    inv.out.result({"imported": loaded}, f"imported {keys_text(loaded)}")
    return OK


@click.command(
    epilog=examples(
        "keyshelf migrate --url sqlite:///app.db --to redis://localhost:6379/0",
        "keyshelf migrate --to postgresql://localhost/app --namespace tenant1",
    )
)
@click.option("--to", "target_url", required=True, metavar="URL", help="The store to copy into.")
@click.option(
    "--namespace",
    "only",
    multiple=True,
    metavar="NAME",
    help="Copy only this namespace (repeatable) [default: every namespace].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Keys per read and write.",
)
@common_options(namespace=False)
def migrate(target_url: str, only: tuple[str, ...], batch_size: int) -> int:
    """Copy every key to another store.

    Copies from --url (the source) into --to, with values, TTLs and metadata.
    Expiry is kept as an absolute instant, so a key has the same time left
    in the target. Existing keys in the target are overwritten.
    """
    inv = current()
    with (
        inv.store(create=False) as source,
        keyshelf.open(target_url) as target,
        progress("Migrating", None) as update,
    ):
        copied = keyshelf.migrate(
            source,
            target,
            batch_size=batch_size,
            namespaces=only or None,
            progress=update,
        )
    inv.out.result({"migrated": copied}, f"migrated {keys_text(copied)}")
    return OK


COMMANDS: list[click.Command] = [export, import_, migrate]
