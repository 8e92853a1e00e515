"""``keyshelf shell``: an interactive prompt over the same commands.

Each line is a command line without the leading ``keyshelf`` (shell
quoting rules, ``#`` starts a comment), run against one store that stays
open for the whole session. Built-ins: ``help [COMMAND]``, ``use NAMESPACE``,
``quit``/``exit``. On a terminal the prompt has line editing and history
(readline, where available); when stdin is not a terminal the lines are read
silently, one by one, so a script or a test can drive the shell.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Callable

import click

import keyshelf

from .context import ShellState, common_options, current
from .exit_codes import OK, USAGE, CommandUsageError
from .help import examples
from .output import stdin_is_terminal
from .runner import error_line, run

__all__ = ["Shell", "shell"]

_BUILTINS = [
    ("help [COMMAND]", "list the commands, or show one command's help"),
    ("use NAMESPACE", "switch to another namespace (no argument: show the current one)"),
    ("quit, exit", "leave the shell (Ctrl-D too)"),
]


class Shell:
    """The read-run loop; ``root`` is the ``keyshelf`` command group."""

    def __init__(self, root: click.Group, state: ShellState) -> None:
        self.root = root
        self.state = state
        self.status = OK
        self._read: Callable[[], str | None] = (
            self._read_terminal if state.interactive else self._read_stream
        )

    # -- input --------------------------------------------------------------

    def _prompt(self) -> str:
        return f"keyshelf[{self.state.namespace}]> "

    def _read_terminal(self) -> str | None:
        try:
            return input(self._prompt())
        except EOFError:
            click.echo("", err=True)
            return None

    def _read_stream(self) -> str | None:
        line = sys.stdin.readline()
        return line if line else None

    # -- the loop -----------------------------------------------------------

    def loop(self) -> int:
        """Run lines until ``quit`` or end of input; return the last status."""
        if self.state.interactive:
            # Importing readline enables line editing and history; it is not
            # on every platform, and the shell works without it.
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401
            click.echo(
                f"keyshelf {keyshelf.__version__} shell, namespace "
                f"{self.state.namespace!r}. Type 'help' for commands, 'quit' to leave.",
                err=True,
            )
        while True:
            try:
                line = self._read()
            except KeyboardInterrupt:
                click.echo("", err=True)  # Ctrl-C drops the line, like a shell
                continue
            if line is None:
                return self.status
            if self.run_line(line) is None:
                return self.status

    def run_line(self, line: str) -> int | None:
        """Run one line; ``None`` means the shell should stop."""
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:  # an unclosed quote
            error_line(f"cannot read the line: {exc}")
            self.status = USAGE
            return self.status
        if not words:
            return self.status
        if words[0] == "keyshelf":  # a pasted full command line works too
            words = words[1:]
        name, args = (words[0], words[1:]) if words else ("help", [])
        if name in ("quit", "exit"):
            return None
        if name in ("help", "?"):
            self.status = self.help(args)
        elif name == "use":
            self.status = self.use(args)
        elif name == "shell":
            error_line("already in the shell")
            self.status = USAGE
        else:
            self.status = run(self.root, words, obj=self.state)
        return self.status

    # -- built-ins ----------------------------------------------------------

    def help(self, args: list[str]) -> int:
        """``help``: the command list; ``help NAME``: that command's --help."""
        if args:
            return run(self.root, [args[0], "--help"], obj=self.state)
        ctx = click.Context(self.root, info_name="keyshelf")
        width = max(len(name) for name in self.root.list_commands(ctx)) + 2
        click.echo("Commands (options as on the command line; 'help NAME' for details):")
        for name in self.root.list_commands(ctx):
            command = self.root.get_command(ctx, name)
            if command is None or name == "shell":
                continue
            click.echo(f"  {name:<{width}}{command.get_short_help_str(70)}")
        click.echo("Shell:")
        for usage, text in _BUILTINS:
            click.echo(f"  {usage:<18}{text}")
        return OK

    def use(self, args: list[str]) -> int:
        """``use NAME``: switch namespace; without NAME print the current one."""
        if not args:
            click.echo(self.state.namespace)
            return OK
        if len(args) > 1:
            error_line("use takes one namespace")
            return USAGE
        try:
            self.state.view(args[0])
        except keyshelf.KVError as exc:
            error_line(str(exc))
            return USAGE
        self.state.namespace = args[0]
        return OK


@click.command(
    epilog=examples(
        "keyshelf shell",
        "keyshelf shell --url redis://localhost:6379/0 --namespace tenant1",
        "printf 'set n 1\\nincr n\\nget n\\n' | keyshelf shell",
    )
)
@common_options()
@click.pass_context
def shell(ctx: click.Context) -> int:
    """Explore a store interactively.

    Type commands without 'keyshelf'. The store stays open between lines;
    'use NAME' switches namespace, 'help' lists the commands, 'quit' leaves.
    Exits with the status of the last command, so a script piped into it
    can be checked.
    """
    inv = current()
    if inv.shell is not None:
        raise CommandUsageError("already in the shell")
    root = ctx.find_root().command
    assert isinstance(root, click.Group)
    interactive = stdin_is_terminal()
    with keyshelf.open(inv.url, **inv.open_options()) as store:
        state = ShellState(
            store=store,
            namespace=store.namespace_name,
            url=inv.url,
            separator=inv.separator,
            as_json=inv.as_json,
            interactive=interactive,
        )
        return Shell(root, state).loop()
