"""The PostgreSQL backend: ``postgresql://user@host:5432/db`` (also ``postgres://``).

Needs the ``postgres`` extra (``pip install 'keyshelf[postgres]'``: psycopg 3
with its connection pool); psycopg is imported only when such a URL is
opened, so ``import keyshelf`` never needs it.

URL options (query parameters or keyword arguments of ``open``):

================== =========== ===================================================
option             default     meaning
================== =========== ===================================================
schema             keyshelf    PostgreSQL schema holding keyshelf's tables
table              kv          table name (plus ``<table>_meta`` for the version)
min_size           1           connections the pool keeps open
max_size           10          most connections the pool opens
connect_timeout    10          seconds to connect, and to wait for a free connection
timeout            30          seconds a call waits for any answer of the server
                               before giving up (BackendUnavailableError)
statement_timeout  (server's)  seconds a statement may run before the server
                               cancels it
================== =========== ===================================================

Any libpq connection parameter (``sslmode``, ``application_name``, ``options``,
``target_session_attrs`` ...) is passed through; anything else is refused.

``open()`` connects once: an unreachable server, a database that is not
UTF-8, a table that is not keyshelf's or a newer schema version is refused
right there (BackendUnavailableError / IncompatibleStoreError, naming
``host:port/db``), never at the first operation. The first open of a
database creates the schema and tables, race-free. ``open_async()`` checks
the URL and options at once but does no I/O: the same checks and the schema
preparation run when the store is entered (``async with``) or on its first
call, inside the event loop (never blocking it), and raise the same errors
there.

See :mod:`keyshelf.backends._postgres_async` for the guarantees (atomicity,
the server clock, errors) and ``docs/postgres.md`` for the table layout.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

from .._show import show
from ..errors import InvalidURLError
from ..options import MAX_SECONDS, as_bool, as_number, as_str, refuse_unknown
from ._postgres_sql import DEFAULT_TIMEOUT, IDENTIFIER, Config, location_of

# Connection parameters keyshelf sets itself.
_MANAGED = {"connect_timeout"}


def parse(url: SplitResult, options: dict[str, Any]) -> Config:
    """Check the URL and options; raise InvalidURLError for anything unusable."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    if url.fragment:
        raise InvalidURLError("PostgreSQL URLs take no #fragment")
    schema = as_str("schema", options.pop("schema", "keyshelf"))
    table = as_str("table", options.pop("table", "kv"))
    for name, value in (("schema", schema), ("table", table)):
        if not IDENTIFIER.fullmatch(value):
            raise InvalidURLError(
                f"PostgreSQL {name} name {value!r} must be a plain identifier "
                "(letters, digits, underscores; at most 58 characters)"
            )
    # Far above what a server accepts (100 connections by default); a pool opens
    # min_size connections at once and walks max_size slots when it closes.
    min_size = as_number(
        "min_size", options.pop("min_size", 1), integer=True, minimum=-1, maximum=10_000
    )
    max_size = as_number("max_size", options.pop("max_size", 10), integer=True, maximum=10_000)
    if max_size < max(min_size, 1):
        raise InvalidURLError(
            f"Option max_size ({show(max_size)}) must be at least min_size ({show(min_size)})"
        )
    connect_timeout = as_number(
        "connect_timeout", options.pop("connect_timeout", 10.0), maximum=MAX_SECONDS
    )
    timeout = as_number("timeout", options.pop("timeout", DEFAULT_TIMEOUT), maximum=MAX_SECONDS)
    create = as_bool("create", options.pop("create", True))
    if "readonly" in options:
        raise InvalidURLError(
            f"Option readonly is not available for {url.scheme}:// stores: connect as a "
            "PostgreSQL role that may only SELECT instead (or set default_transaction_read_only)"
        )
    statement_timeout = options.pop("statement_timeout", None)
    if statement_timeout is not None:
        # The server takes it in whole milliseconds, as a 32-bit int.
        statement_timeout = as_number("statement_timeout", statement_timeout, maximum=2147483)

    supported = {opt.keyword.decode() for opt in psycopg.pq.Conninfo.get_defaults()}
    known = supported - _MANAGED
    libpq: dict[str, str] = {}
    for name in [name for name in options if name in known]:
        value = options.pop(name)
        try:
            libpq[name] = str(value)
            libpq[name].encode("utf-8")
        except ValueError:  # an int too long to print, or a lone surrogate
            raise InvalidURLError(f"Option {name} cannot be used: {show(value)}") from None
    refuse_unknown(url.scheme, options)

    # Not urlunsplit: it drops the "//" of a host-less URL (postgresql:///db,
    # the local socket), which libpq then cannot parse.
    conninfo = f"{url.scheme}://{url.netloc}{url.path}"
    try:
        parts = conninfo_to_dict(conninfo, **libpq)
    except psycopg.Error as exc:
        raise InvalidURLError(f"Cannot use PostgreSQL URL: {exc}") from None
    for port in str(parts.get("port") or "5432").split(","):
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidURLError(f"PostgreSQL port must be a number from 1 to 65535, got {port!r}")
    return Config(
        conninfo=conninfo,
        libpq=libpq,
        schema=schema,
        table=table,
        min_size=min_size,
        max_size=max_size,
        connect_timeout=connect_timeout,
        statement_timeout=statement_timeout,
        location=location_of(parts),
        timeout=timeout,
        tcp_user_timeout="tcp_user_timeout" in supported,
        create=create,
    )


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``postgresql://`` and ``postgres://`` URLs."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"The {url.scheme}:// backend needs an optional dependency ({exc.name}): "
            "pip install 'keyshelf[postgres]'"
        ) from exc
    config = parse(url, options)
    if asynchronous:
        from ._postgres_async import AsyncPostgresBackend

        # No I/O here: the first call prepares the schema inside the event loop.
        return AsyncPostgresBackend(config)
    from ._postgres_sync import PostgresBackend, prepare_database

    prepare_database(config)
    return PostgresBackend(config, prepared=True)
