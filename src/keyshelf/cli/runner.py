"""Running a command line: every failure becomes one line on stderr and an exit code.

Click's own error display (usage lines, a hint, then the error) and Python
tracebacks are both replaced by ``keyshelf: error: <message>``; see
:mod:`.exit_codes` for the codes. Set ``KEYSHELF_DEBUG=1`` to let unexpected
exceptions through with their traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from keyshelf.errors import (
    BackendError,
    KeyNotFoundError,
    KeysNotFoundError,
    KVError,
    StoreNotFoundError,
)

from .context import ShellState
from .exit_codes import BACKEND, NOT_FOUND, OK, STORE_NOT_FOUND, USAGE
from .values import ValueInputError

__all__ = ["error_line", "run"]


def error_line(message: str) -> None:
    """Print ``keyshelf: error: message`` on stderr, as a single line."""
    text = " ".join(str(message).split("\n")).strip() or "unknown error"
    click.echo(f"keyshelf: error: {text}", err=True)


def _usage_message(exc: click.UsageError, in_shell: bool) -> str:
    message = exc.format_message()
    if exc.ctx is not None:
        if in_shell:
            # Inside the shell, commands are typed without "keyshelf" and the
            # help is the built-in ``help [COMMAND]``.
            words = exc.ctx.command_path.split()[1:]
            hint = " ".join(["help", *words[:1]])
        else:
            hint = f"{exc.ctx.command_path} --help"
        message = f"{message.rstrip().rstrip('.')} (see '{hint}')"
    return message


def _silence_stdout() -> None:
    # After a broken pipe (`keyshelf keys | head`), point stdout at /dev/null
    # so the interpreter's final flush does not complain again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # no real file descriptor (a test runner): nothing to flush


def run(
    command: click.Command,
    args: Sequence[str] | None = None,
    *,
    prog_name: str = "keyshelf",
    obj: Any = None,
) -> int:
    """Run ``command`` with ``args`` and return the exit code; never raises.

    Used by the console script, by ``python -m keyshelf``, by click's test
    runner (through the group's ``main``) and by every line of the shell.
    """
    try:
        rv = command.main(
            args=list(args) if args is not None else None,
            prog_name=prog_name,
            obj=obj,
            standalone_mode=False,
        )
    except (KeyNotFoundError, KeysNotFoundError) as exc:
        error_line(str(exc))
        return NOT_FOUND
    except StoreNotFoundError as exc:
        # Commands that cannot add a key open with create=False: a mistyped
        # --url is reported instead of leaving an empty store behind.
        error_line(str(exc))
        return STORE_NOT_FOUND
    except BackendError as exc:
        error_line(str(exc))
        return BACKEND
    except (KVError, ValueInputError) as exc:
        error_line(str(exc))
        return USAGE
    except click.UsageError as exc:
        error_line(_usage_message(exc, isinstance(obj, ShellState)))
        return USAGE
    except click.FileError as exc:
        # A file named on the command line cannot be opened: the argument is wrong.
        error_line(exc.format_message())
        return USAGE
    except click.ClickException as exc:
        error_line(exc.format_message())
        return exc.exit_code
    except click.Abort:
        click.echo("keyshelf: aborted", err=True)
        return NOT_FOUND
    except BrokenPipeError:
        _silence_stdout()
        return OK
    except ImportError as exc:
        # open() names the extra to install when a backend's driver is missing.
        error_line(str(exc))
        return BACKEND
    except OSError as exc:
        error_line(f"I/O error: {exc}")
        return BACKEND
    except Exception as exc:
        if os.environ.get("KEYSHELF_DEBUG"):
            raise
        error_line(f"unexpected {type(exc).__name__}: {exc} (set KEYSHELF_DEBUG=1 for a traceback)")
        return BACKEND
    if isinstance(rv, int):
        return rv
    return OK
