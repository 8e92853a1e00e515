"""The ``keyshelf`` command group: every command, the common options, exit codes."""

from __future__ import annotations

import sys
from typing import Any

import click

import keyshelf

from . import key_commands, store_commands, transfer_commands, watch_command
from .context import common_options
from .exit_codes import OK
from .help import examples
from .runner import run
from .shell import shell

__all__ = ["cli"]


class KeyshelfGroup(click.Group):
    """A group whose standalone runs report errors the keyshelf way.

    Click's standalone mode prints usage errors over several lines and lets
    other exceptions escape as tracebacks; here every run goes through
    :func:`.runner.run` instead (one line on stderr, stable exit codes), also
    when click's test runner calls ``main``.
    """

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; in standalone mode exit with the keyshelf exit code."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        sys.exit(run(self, args, prog_name=prog_name or "keyshelf", obj=extra.get("obj")))


@click.group(
    "keyshelf",
    cls=KeyshelfGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=examples(
        'keyshelf set user:1 \'{"name": "Alice"}\' --ttl 1h',
        "keyshelf get user:1",
        "keyshelf keys 'user:*' --url redis://localhost:6379/0",
        "keyshelf --url sqlite:///app.db --namespace tenant1 stats",
    )
    + "\n\n\b\nExit codes: 0 success, 1 not found or condition false, 2 usage error,\n"
    "3 backend error, 4 store not found (only set, mset, incr, decr, import,\n"
    "shell and migrate's --to create a store). Errors are one line on stderr.",
)
@click.version_option(keyshelf.__version__, "--version", prog_name="keyshelf")
@common_options()
@click.pass_context
def cli(ctx: click.Context) -> int:
    """A typed key-value store from the command line.

    Values are JSON literals with keyshelf's extended JSON for other types
    (42 is an int, "42" a string, {"$bytes": "..."} bytes). --url, --namespace,
    --separator and --json work before the command or after it.
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
    return OK


for _command in [
    *key_commands.COMMANDS,
    *store_commands.COMMANDS,
    *transfer_commands.COMMANDS,
    *watch_command.COMMANDS,
    shell,
]:
    cli.add_command(_command)
