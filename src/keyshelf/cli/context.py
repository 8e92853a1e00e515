"""The options every command takes, and opening the store they name.

``--url``, ``--namespace``, ``--separator`` and ``--json`` are accepted both
before the command (``keyshelf --url x.db get k``) and after it
(``keyshelf get k --url x.db``); the one given after the command wins. Their
values are collected in ``ctx.meta``, which click shares between a group and
its command and creates afresh for every invocation, so nothing leaks from
one shell line to the next.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

import keyshelf
from keyshelf import Store
from keyshelf._open import DEFAULT_URL
from keyshelf.errors import StoreNotFoundError
from keyshelf.patterns import compile_pattern

from .output import Output

__all__ = ["Invocation", "ShellState", "common_options", "current"]

_META_KEY = "keyshelf.cli.options"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ShellState:
    """What the interactive shell keeps between lines: its open store."""

    store: Store
    namespace: str
    url: str | None = None
    separator: str | None = None
    as_json: bool = False
    interactive: bool = False
    #: the view of ``store`` for the current namespace (``use NAME``)
    views: dict[str, Store] = field(default_factory=dict)

    def view(self, namespace: str | None = None) -> Store:
        """The shell's store bound to ``namespace`` (default: the current one)."""
        name = namespace or self.namespace
        if name not in self.views:
            self.views[name] = self.store.namespace(name)
        return self.views[name]


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    # Only options actually given are recorded, so a command's own --url
    # overrides the group's and an absent one leaves it alone.
    if value is None or value is False or value == ():
        return
    assert param.name is not None
    if param.name == "separator" and value == "":
        # An empty separator splits nothing; leaving --separator out is how
        # to ask for Redis glob patterns.
        raise click.BadParameter(
            "the separator must not be empty (leave --separator out for plain glob patterns)",
            ctx=ctx,
            param=param,
        )
    ctx.meta.setdefault(_META_KEY, {})[param.name] = value


def common_options(*, namespace: bool = True) -> Callable[[F], F]:
    """Add ``--url``, ``--namespace``, ``--separator`` and ``--json`` to a command.

    ``namespace=False`` leaves out ``--namespace`` for commands that define
    their own (``migrate`` takes it several times).
    """

    def decorate(f: F) -> F:
        f = click.option(
            "--json",
            "as_json",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_remember,
            help="Machine-readable JSON output.",
        )(f)
        f = click.option(
            "--separator",
            metavar="SEP",
            expose_value=False,
            callback=_remember,
            help='Hierarchical patterns with this key separator (e.g. ".").',
        )(f)
        if namespace:
            f = click.option(
                "--namespace",
                metavar="NAME",
                expose_value=False,
                callback=_remember,
                help='Namespace to act on [default: "default"].',
            )(f)
        f = click.option(
            "--url",
            metavar="URL",
            expose_value=False,
            callback=_remember,
            help="Store URL [default: $KEYSHELF_URL, else ./keyshelf.db].",
        )(f)
        return f

    return decorate


class Invocation:
    """One command's view of the options given and the shell it may run in."""

    def __init__(self, ctx: click.Context) -> None:
        given: dict[str, Any] = ctx.meta.get(_META_KEY, {})
        self.url: str | None = given.get("url")
        self.namespace: str | None = given.get("namespace")
        self.separator: str | None = given.get("separator")
        root = ctx.find_root()
        self.shell: ShellState | None = root.obj if isinstance(root.obj, ShellState) else None
        as_json = bool(given.get("as_json")) or (self.shell is not None and self.shell.as_json)
        self.out = Output(as_json=as_json)

    @property
    def as_json(self) -> bool:
        """True when the user asked for JSON output."""
        return self.out.as_json

    def check_pattern(self, pattern: str | None) -> None:
        """Refuse a bad PATTERN before the store is opened (nothing is created)."""
        if pattern is None:
            return
        separator = self.separator
        if separator is None and self.shell is not None and self.url is None:
            separator = self.shell.separator
        compile_pattern(pattern, separator)

    def open_options(self) -> dict[str, Any]:
        """The keyword options for :func:`keyshelf.open` that were given."""
        options: dict[str, Any] = {}
        if self.namespace is not None:
            options["namespace"] = self.namespace
        if self.separator is not None:
            options["separator"] = self.separator
        return options

    @contextmanager
    def store(self, *, create: bool = True) -> Iterator[Store]:
        """The store to act on, closed afterwards unless the shell owns it.

        ``create=False`` is for commands that cannot add a key (they read,
        or only remove and change existing keys): the store is opened with
        ``create=False``, so a mistyped ``--url`` raises StoreNotFoundError
        (exit 4) instead of leaving an empty store behind.
        """
        if self.shell is not None and self.url is None and self.separator is None:
            # Inside the shell the store stays open between lines; a
            # namespace given on the line is a cheap view of the same store.
            yield self.shell.view(self.namespace)
            return
        url = self.url
        options = self.open_options()
        if self.shell is not None:
            # Another URL or separator on a shell line: a store of its own,
            # with the shell's settings for whatever the line leaves out.
            url = url if url is not None else self.shell.url
            if self.separator is None and self.shell.separator is not None:
                options["separator"] = self.shell.separator
            options.setdefault("namespace", self.shell.namespace)
        if not create:
            options["create"] = False
        try:
            opened = keyshelf.open(url, **options)
        except StoreNotFoundError as exc:
            raise StoreNotFoundError(_not_found_message(url, self.shell is not None)) from exc
        with opened as store:
            yield store


def _not_found_message(url: str | None, in_shell: bool) -> str:
    """The one-line error of a command that would have had to create its store."""
    where = url if url is not None else os.environ.get("KEYSHELF_URL") or DEFAULT_URL
    command = click.get_current_context().info_name
    what = "its source" if command == "migrate" else "one"
    if isinstance(where, str) and where.lower().startswith("memory:"):
        if in_shell:
            # --url or --separator on a shell line opens a store of its own.
            return (
                f"'{command}' with its own --url or --separator opens another memory:// "
                "store, which is new and empty: give --separator when starting the shell"
            )
        return (
            f"'{command}' on memory:// would see a new, empty store: every run of "
            "keyshelf gets its own, so use memory:// inside 'keyshelf shell'"
        )
    return (
        f"no store at {where!r}: '{command}' never creates {what} (check --url; "
        "set, mset, incr or import create a store)"
    )


def current() -> Invocation:
    """The :class:`Invocation` of the running command."""
    return Invocation(click.get_current_context())
