"""The PostgreSQL backend's connections (async; source of ``_postgres_lease_sync.py``).

``tools/async_to_sync.py`` generates the sync twin from this file by renaming
(``AsyncConnectionPool`` -> ``ConnectionPool`` ...); edit this one and run
``make generate``.

:class:`AsyncConnections` is a lease on top of psycopg_pool's pool: an
operation takes a connection from :meth:`AsyncConnections.lease` (a context
manager) and gives it back on exit. Guarantees:

* **Hot connections first.** A released connection stays with the backend
  (last in, first out) instead of going through the pool's queue; it goes
  back to the pool when someone waits there, and after ``_HOLD`` seconds,
  so the pool's fairness, lifetime and idle limits still apply.
* **A dead connection is never handed out.** A connection is checked
  without a round trip when taken (a server that shut down or restarted has
  closed the socket); a dead one is closed and replaced.
* **Bounded waits.** Every wait for the server's answer ends after the
  store's ``timeout``: the connection is then closed (the pool replaces it)
  and :class:`ServerTimeout` raised.
* **Opened on first use.** The schema is prepared (by the backend's
  ``prepare`` callable, unless already done) and the pool opened by the
  first lease or :meth:`AsyncConnections.prepare`, once, behind a lock.
* **Driver errors become keyshelf errors** naming the server and the
  action (:meth:`AsyncConnections.error`), the driver's exception chained.
"""

from __future__ import annotations

import asyncio
import functools
import select
import threading
import weakref
from contextlib import suppress
from time import monotonic
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import psycopg
from psycopg import AsyncConnection, errors
from psycopg.abc import PQGen
from psycopg.adapt import AdaptersMap
from psycopg.pq import ConnStatus, TransactionStatus
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from ..errors import (
    BackendError,
    BackendUnavailableError,
    IncompatibleStoreError,
    StoreClosedError,
)
from ._postgres_sql import Config

# Every int goes to the server as int8, so one prepared statement serves
# every value (psycopg would otherwise pick int2/int4/int8/numeric by size).
ADAPTERS = AdaptersMap(psycopg.adapters)
ADAPTERS.register_dumper(int, Int8Dumper)
ADAPTERS.register_dumper(int, Int8BinaryDumper)

# psycopg prepares a statement once it ran this many times, or at once when
# executed with prepare=True, as every statement of the backend is. Not None:
# None switches preparation off altogether, prepare=True included, which made
# every call parse and plan its statement again (a get took 84 us instead of
# 46 us on a local server). Statements not marked (schema setup) stay unprepared.
_NEVER_BY_COUNT = 2**31 - 1

# Seconds the pool keeps retrying a failed connection in the background
# before leaving it to the next request (which connects on demand).
_RECONNECT = 0.5
# Seconds a connection stays with the backend before going back to the pool.
_HOLD = 60.0

# psycopg raises this (an OperationalError) when a wait with a timeout expires.
_WAIT_TIMEOUT: type[psycopg.OperationalError] = errors._WaitTimeout
# psycopg's poll interval while waiting (it checks for Ctrl-C that often).
_WAIT_INTERVAL = 0.1

RV = TypeVar("RV")


class ServerTimeout(psycopg.OperationalError):
    """The server sent no answer within the store's ``timeout`` (the connection is closed)."""


class BoundedConnection(AsyncConnection[Any]):
    """A connection whose every wait for the server ends after ``limit`` seconds.

    A server that stops answering (frozen, or the network gone) cannot be
    cancelled by the server's own ``statement_timeout``: the client must give
    up. After such a timeout the connection is in an unknown state, so it is
    closed (the pool replaces it) and :class:`ServerTimeout` raised.
    """

    limit: float | None = None
    #: A poll(2) object watching the socket for input (set when connected):
    #: the health check of an idle connection is one ``poll`` when it holds none.
    poller: select.poll | None = None
    #: Set when the server announced, while the connection sat idle, that it is
    #: closing it (a FATAL message, e.g. from pg_terminate_backend).
    server_closing = False

    async def wait(
        self, gen: PQGen[RV], interval: float = _WAIT_INTERVAL, timeout: float | None = None
    ) -> RV:
        limit = self.limit if timeout is None else timeout
        try:
            return await super().wait(gen, interval, limit)
        except _WAIT_TIMEOUT as exc:
            await self.close()
            raise ServerTimeout(f"no answer from the server within {limit:g} s") from exc


def _note_closing(ref: weakref.ref[Any], diag: psycopg.errors.Diagnostic) -> None:
    """Notice handler: mark the connection when the server says it is closing it."""
    conn = ref()
    if conn is not None and diag.severity_nonlocalized in ("FATAL", "PANIC"):
        conn.server_closing = True


def describe(exc: BaseException) -> str:
    """A one-line message of a driver exception."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class Prepare(Protocol):
    """Prepares the schema before the pool opens (the backend's ``prepare_database``)."""

    async def __call__(self, config: Config, /) -> None: ...


class AsyncConnections:
    """The connections of one backend: psycopg_pool's pool and a lease on top of it."""

    def __init__(self, config: Config, prepare: Prepare, *, prepared: bool = False) -> None:
        """Build the pool, unopened; no I/O.

        ``prepare`` runs once before the pool opens, unless ``prepared`` says
        it has run already.
        """
        self.location = config.location
        self._config = config
        self._prepare = prepare
        self.closed = False
        self._opened = False
        self._prepared = prepared
        # One caller prepares the schema and opens the pool; the others wait.
        if True:  # ASYNC
            self._opening = asyncio.Lock()
        else:
            self._opening = threading.Lock()
        self._last_connect_error = ""
        self._idle: list[tuple[AsyncConnection[Any], float]] = []
        self._waiting: list[object] = []
        kwargs = {"autocommit": True, "prepare_threshold": _NEVER_BY_COUNT, "context": ADAPTERS}
        kwargs.update(config.connect_kwargs())
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            config.conninfo,
            connection_class=self._connection_class(),
            kwargs=kwargs,
            min_size=config.min_size,
            max_size=config.max_size,
            timeout=config.connect_timeout,
            reconnect_timeout=_RECONNECT,
            name=f"keyshelf {config.location}",
            open=False,
        )

    def _connection_class(self) -> type[AsyncConnection[Any]]:
        """Connections that remember why connecting failed, for error messages."""
        connections = self
        limit = self._config.wait_limit()

        class RecordingConnection(BoundedConnection):
            @classmethod
            async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
                try:
                    conn = await super().connect(conninfo, **kwargs)
                except psycopg.Error as exc:
                    connections._last_connect_error = describe(exc)
                    raise
                connections._last_connect_error = ""
                conn.limit = limit
                if hasattr(select, "poll"):  # not on Windows: the check then reads at once
                    conn.poller = select.poll()
                    conn.poller.register(conn.pgconn.socket, select.POLLIN)
                conn.add_notice_handler(functools.partial(_note_closing, weakref.ref(conn)))
                return conn

        return RecordingConnection

    def lease(self, action: str) -> Lease:
        """``async with connections.lease(action) as conn``: a connection for one operation.

        Driver errors raised inside become keyshelf errors naming the server
        and ``action``, with the driver's exception chained.
        """
        return Lease(self, action)

    def error(self, exc: psycopg.Error, action: str) -> BackendError:
        """The keyshelf error for a driver error met during ``action``."""
        where = self.location
        if isinstance(exc, PoolClosed) or self.closed:
            return StoreClosedError(f"The store {where} is closed")
        if isinstance(exc, PoolTimeout):
            cause = self._last_connect_error or "all connections busy"
            return BackendUnavailableError(
                f"PostgreSQL at {where} is unavailable during {action}: no connection within "
                f"{self._config.connect_timeout:g} s ({cause})"
            )
        if isinstance(exc, ServerTimeout):
            return BackendUnavailableError(
                f"PostgreSQL at {where} did not answer during {action} within the timeout of "
                f"{self._config.timeout:g} s ({describe(exc)}); the connection was closed"
            )
        if isinstance(exc, errors.QueryCanceled):
            return BackendUnavailableError(
                f"PostgreSQL at {where} cancelled {action} (statement timeout): {describe(exc)}"
            )
        if isinstance(exc, psycopg.OperationalError):
            return BackendUnavailableError(
                f"Lost the connection to PostgreSQL at {where} during {action}: {describe(exc)}"
            )
        if isinstance(exc, errors.UndefinedTable | errors.InvalidSchemaName):
            return IncompatibleStoreError(
                f"PostgreSQL at {where}: keyshelf's table {self._config.schema}."
                f"{self._config.table} is gone (dropped while the store was open?): "
                f"{describe(exc)}"
            )
        return BackendError(f"PostgreSQL error at {where} during {action}: {describe(exc)}")

    @staticmethod
    def _healthy(conn: AsyncConnection[Any]) -> bool:
        """Whether an idle pooled connection still has a live server (no round trip).

        Reads whatever the socket holds without blocking: a server that shut
        down or restarted has closed it, which libpq sees as end of input.
        """
        pgconn = conn.pgconn
        if pgconn.status != ConnStatus.OK:
            return False
        poller = getattr(conn, "poller", None)
        if poller is not None and not poller.poll(0):
            # Nothing arrived while it sat idle (the common case, one system
            # call): a closed or closing server would have left input or EOF.
            return not getattr(conn, "server_closing", False)
        try:
            # Twice: a terminated backend sends its last message, then closes;
            # the first read takes the message, the second meets the end.
            pgconn.consume_input()
            pgconn.consume_input()
            # The socket may not be closed yet when its FATAL message is in:
            # parsing what was read hands that message, on an idle connection,
            # to the notice handlers (_note_closing).
            pgconn.is_busy()
        except psycopg.Error:
            return False
        return pgconn.status == ConnStatus.OK and not getattr(conn, "server_closing", False)

    async def _acquire(self) -> tuple[AsyncConnection[Any], float]:
        """A healthy connection and when it left the pool.

        Connections are reused last-in first-out from the backend's own idle
        list (the hottest connection first, without a trip through the pool's
        queue); the pool is asked only when that list is empty.
        """
        idle = self._idle
        while idle:
            try:
                conn, taken = idle.pop()
            except IndexError:  # another thread took the last one
                break
            if self._healthy(conn):
                return conn, taken
            await self._discard(conn)
        if not self._opened:
            await self._open()
        # While someone waits on the pool, released connections go back to it.
        token = object()
        self._waiting.append(token)
        try:
            for _ in range(self._config.max_size + 1):
                conn = await self._pool.getconn()
                if self._healthy(conn):
                    return conn, monotonic()
                await self._discard(conn)
            return await self._pool.getconn(), monotonic()
        finally:
            self._waiting.remove(token)

    async def prepare(self) -> None:
        """Prepare the schema and open the pool now if no lease has yet."""
        if self.closed:
            raise StoreClosedError(f"The store {self.location} is closed")
        if not self._opened:
            try:
                await self._open()
            except psycopg.Error as exc:
                raise self.error(exc, "open") from exc

    async def _open(self) -> None:
        """Prepare the schema if it is not, and open the pool; once, alone."""
        async with self._opening:
            if not self._prepared:
                await self._prepare(self._config)
                self._prepared = True
            if not self._opened:
                await self._pool.open()
                self._opened = True

    async def _discard(self, conn: AsyncConnection[Any]) -> None:
        """Close a connection the server closed; the pool replaces it."""
        with suppress(psycopg.Error):
            await conn.close()
            await self._pool.putconn(conn)

    async def _release(self, conn: AsyncConnection[Any], taken: float) -> None:
        """Keep an idle, healthy connection for reuse, or hand it back to the pool.

        It goes back to the pool when someone is waiting there for a
        connection, and after ``_HOLD`` seconds, so the pool's fairness,
        lifetime and idle limits still apply.
        """
        pgconn = conn.pgconn
        if (
            not self.closed
            and not self._waiting
            and pgconn.status == ConnStatus.OK
            and pgconn.transaction_status == TransactionStatus.IDLE
            and monotonic() - taken < _HOLD
        ):
            self._idle.append((conn, taken))
            return
        try:
            await self._pool.putconn(conn)
        except psycopg.Error:
            with suppress(psycopg.Error):
                await conn.close()

    async def close(self) -> None:
        """Close every connection and the pool; later leases raise StoreClosedError."""
        if self.closed:
            return
        self.closed = True
        with suppress(psycopg.Error):  # best effort: the server may be gone
            while self._idle:
                conn, _ = self._idle.pop()
                await self._pool.putconn(conn)
            await self._pool.close()


class Lease:
    """The async context manager behind :meth:`AsyncConnections.lease`."""

    __slots__ = ("_action", "_conn", "_connections", "_taken")

    def __init__(self, connections: AsyncConnections, action: str) -> None:
        self._connections = connections
        self._action = action

    async def __aenter__(self) -> AsyncConnection[Any]:
        connections = self._connections
        if connections.closed:
            raise StoreClosedError(f"The store {connections.location} is closed")
        try:
            self._conn, self._taken = await connections._acquire()
        except psycopg.Error as exc:
            raise connections.error(exc, self._action) from exc
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connections = self._connections
        await connections._release(self._conn, self._taken)
        if isinstance(exc, psycopg.Error):
            raise connections.error(exc, self._action) from exc
