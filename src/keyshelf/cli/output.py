"""Writing results: human text and rich tables, or JSON for scripts; progress bars.

Rich is imported only when something is drawn for a person (a table, a
highlighted value on a terminal, a progress bar), so commands whose output is
piped start fast and print plain text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
import orjson

from .values import pretty_json, value_json

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "Output",
    "ProgressCallback",
    "isatty",
    "json_text",
    "progress",
    "stderr_is_terminal",
    "stdin_is_terminal",
    "stdout_is_terminal",
]

#: ``progress(done, total)``, the callback keyshelf's long operations accept.
ProgressCallback = Callable[[int, int | None], None]


def isatty(stream: Any) -> bool:
    """``stream.isatty()``, or False for streams without one (or closed)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def stdin_is_terminal() -> bool:
    """True when a person can answer a question (stdin is a terminal)."""
    return isatty(sys.stdin)


def stderr_is_terminal() -> bool:
    """True when progress bars can be drawn (stderr is a terminal)."""
    return isatty(sys.stderr)


def stdout_is_terminal() -> bool:
    """True when stdout is a terminal (colours, and no progress while listing)."""
    return isatty(sys.stdout)


def json_text(data: Any) -> str:
    """Plain data (no values from the store) as compact JSON text."""
    return orjson.dumps(data).decode("utf-8")


def _noop(done: int, total: int | None) -> None:
    """The progress callback used when nobody is watching."""


class Output:
    """Where one command's results go, in the mode the user chose.

    In JSON mode every result is one JSON document on stdout; in human mode
    results are text or tables. Messages about the result that are not the
    result itself (``key 'x' not found``) go to stderr in both modes.
    """

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json

    # -- plain results ------------------------------------------------------

    def line(self, text: str) -> None:
        """Print one line on stdout as it is."""
        click.echo(text)

    def json(self, text: str) -> None:
        """Print a JSON document (already serialised) on stdout."""
        click.echo(text)

    def result(self, data: Any, human: str) -> None:
        """Print ``data`` as JSON in JSON mode, else the ``human`` text."""
        click.echo(json_text(data) if self.as_json else human)

    def note(self, message: str) -> None:
        """One line on stderr that explains a result (not an error)."""
        click.echo(f"keyshelf: {message}", err=True)

    # -- values -------------------------------------------------------------

    def value(self, value: Any) -> None:
        """Print a stored value: compact JSON for scripts, indented for people."""
        text = value_json(value)
        if self.as_json:
            click.echo(text)
            return
        text = pretty_json(text)
        if stdout_is_terminal():
            from rich.highlighter import JSONHighlighter
            from rich.text import Text

            # A Text object is never parsed for markup, so a value holding
            # "[bold]" prints as it is.
            self._console().print(JSONHighlighter()(Text(text)), soft_wrap=True)
        else:
            click.echo(text)

    # -- tables -------------------------------------------------------------

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
        """Draw a table for people (callers print JSON themselves in JSON mode)."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title or None, title_justify="left")
        for name in columns:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        self._console().print(table)

    def _console(self) -> Console:
        from rich.console import Console

        # Bound to the current sys.stdout, so test runners that swap it
        # capture the output; highlight/markup off because values are data.
        return Console(file=sys.stdout, highlight=False, markup=False, emoji=False)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[ProgressCallback]:
    """A progress bar on stderr while the block runs, only if stderr is a terminal.

    Yields a ``progress(done, total)`` callback; when stderr is not a terminal
    (piped, redirected, CI) it does nothing, so logs stay clean.
    """
    if not stderr_is_terminal():
        yield _noop
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
        # rich would otherwise swap sys.stdout for a proxy drawn above the
        # bar, on stderr: the command's output must stay on stdout.
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with bar:
        task = bar.add_task(description, total=total)

        def update(done: int, new_total: int | None) -> None:
            bar.update(task, completed=done, total=new_total)

        yield update
