"""Connection settings of the imitated APIs -> a keyshelf URL and ``open()`` options.

Pure functions, no I/O: every check of the values is left to
:func:`keyshelf.open`, which refuses anything unusable at open time.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from ..errors import InvalidURLError

Target = tuple[str, dict[str, Any]]


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """Drop the settings left at ``None`` (meaning: not given)."""
    return {name: value for name, value in options.items() if value is not None}


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The URL of the SQLite file ``path`` (any characters, relative or absolute)."""
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise InvalidURLError(f"An SQLite store needs a file path, got {path!r}")
    return "sqlite:///" + quote(text)


def redis_target(settings: dict[str, Any]) -> Target:
    """redis-py style settings (``host``, ``port``, ``db``, ``password``, ``ssl``,
    ``unix_socket_path`` ...) -> ``redis://host:port`` (``rediss://``, ``unix://``)
    and the options keyshelf's Redis backend takes (``db``, ``password``,
    ``prefix``, ``socket_timeout`` ...). Others are passed on, so that
    ``open()`` names any it does not know."""
    options = _given(settings)
    host = str(options.pop("host", "localhost"))
    port = options.pop("port", 6379)
    ssl = options.pop("ssl", False)
    socket = options.pop("unix_socket_path", None)
    if socket is not None:
        return "unix://" + quote(str(socket)), options
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    scheme = "rediss" if ssl is True else "redis"
    if ssl not in (True, False):
        options["ssl"] = ssl  # refused by open(), with the option's name
    return f"{scheme}://{host}:{port}", options


def postgres_target(settings: dict[str, Any]) -> Target:
    """dataknobs-kv's PostgreSQL config (``host``, ``port``, ``database``, ``user``,
    ``password``, ``table``) -> a ``postgresql://`` URL with the libpq
    parameters as options (they override the URL's ``localhost``); anything
    else not given comes from libpq's defaults and environment (``$PGPORT``,
    ``$PGUSER``, ``$PGPASSWORD`` ...). Other entries (``schema``, ``sslmode``,
    ``connect_timeout`` ...) are passed on as keyshelf options."""
    options = _given(settings)
    if "database" in options:
        if "dbname" in options:
            raise InvalidURLError("Give the PostgreSQL database as database or dbname, not both")
        options["dbname"] = options.pop("database")
    for name in ("host", "port", "dbname", "user", "password"):
        if name in options:
            options[name] = str(options[name])
    return "postgresql://localhost", options
