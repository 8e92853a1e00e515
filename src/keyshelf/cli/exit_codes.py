"""The command line's stable exit codes, and the usage error commands raise.

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success
1     not found, or a condition was false (``exists`` on a missing key,
      ``set --nx`` on a present key, ``get``/``mget``/``ttl`` of missing keys)
2     usage error: bad arguments, an invalid key, TTL, value, pattern or URL
3     backend error: the store failed (cannot connect, not a keyshelf file,
      I/O error), or an unexpected error
4     store not found: a command that cannot add a key (``get``, ``keys``,
      ``export``, ``delete`` ...) was pointed at a store that does not exist;
      it opens with ``create=False``, so nothing was created
====  ==========================================================================
"""

from __future__ import annotations

from typing import ClassVar

import click

__all__ = ["BACKEND", "NOT_FOUND", "OK", "STORE_NOT_FOUND", "USAGE", "CommandUsageError"]

OK = 0
NOT_FOUND = 1
USAGE = 2
BACKEND = 3
STORE_NOT_FOUND = 4


class CommandUsageError(click.ClickException):
    """A usage error a command finds itself (exit code 2, one line on stderr)."""

    exit_code: ClassVar[int] = USAGE
