"""The ``keyshelf`` command line: a thin layer over the public sync API.

``keyshelf`` (the console script) and ``python -m keyshelf`` both call
:func:`main`. The commands live in small modules: ``key_commands`` (one key
or a batch), ``store_commands`` (a whole namespace or store),
``transfer_commands`` (export, import, migrate) and ``shell``; ``app`` puts
them in one click group. ``docs/cli.md`` is the user's guide.

The library never imports this package, so ``import keyshelf`` needs neither
click nor rich.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and exit."""
    try:
        from .app import cli
        from .runner import run
    except ImportError as exc:
        if exc.name not in ("click", "rich"):
            raise
        # click and rich are dependencies of keyshelf; this only happens in a
        # broken install, so say how to repair it instead of a traceback.
        sys.stderr.write(
            f"keyshelf: error: the command line needs the {exc.name!r} package: "
            "pip install --force-reinstall keyshelf\n"
        )
        sys.exit(3)
    sys.exit(run(cli, argv))
