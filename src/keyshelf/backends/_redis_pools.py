"""Bounded connection pools for the Redis backend: wait for a free connection.

redis-py's plain pools fail at once ("Too many connections") when every
connection is busy, and its blocking pools pay for a lock and a timer on every
command. These pools count free slots in front of the plain pool: at most
``max_connections`` connections exist, a caller beyond that waits (up to
``wait_timeout`` seconds, then ``ConnectionError``), and the uncontended path
costs a counter update. :class:`AsyncWaitingPool` serves
``redis.asyncio``, :class:`WaitingPool` redis-py's sync client.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

import redis
import redis.asyncio
from redis import exceptions as redis_errors

_BaseAsyncPool: Any = redis.asyncio.ConnectionPool
_BaseSyncPool: Any = redis.ConnectionPool


def _exhausted(wait_timeout: float, limit: int) -> redis_errors.ConnectionError:
    return redis_errors.ConnectionError(
        f"No free connection within {wait_timeout:g} s (max_connections={limit})"
    )


class AsyncWaitingPool(_BaseAsyncPool):  # type: ignore[misc]
    """An asyncio connection pool of at most ``max_connections``; callers beyond wait.

    The event loop is single-threaded, so a plain counter is the semaphore:
    taking a free slot never suspends; a caller finding none parks a future
    that a release hands its slot to, first come first served.
    """

    #: Pool size when the store sets none: tasks are cheap, connections are not.
    DEFAULT_LIMIT: int | None = 64

    @classmethod
    def build(cls, max_connections: int | None, wait_timeout: float, **kwargs: Any) -> Any:
        """A pool of ``max_connections`` (default :attr:`DEFAULT_LIMIT`)."""
        limit = cls.DEFAULT_LIMIT if max_connections is None else max_connections
        if limit is None:
            return _BaseAsyncPool(**kwargs)
        return cls(max_connections=limit, wait_timeout=wait_timeout, **kwargs)

    def __init__(self, *, max_connections: int, wait_timeout: float, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self._limit = max_connections
        self._wait_timeout = wait_timeout
        self._free = max_connections
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # Connections handed out, each holding one slot until released.
        self._issued: set[Any] = set()

    async def _wait_for_slot(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._wait_timeout)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give_back()  # the slot arrived as we gave up: pass it on
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise _exhausted(self._wait_timeout, self._limit) from None
            raise

    def _give_back(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the waiter
                return
        self._free += 1

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._free > 0 and not self._waiters:
            self._free -= 1
        else:
            await self._wait_for_slot()
        try:
            # On failure the base pool releases the connection itself; it is not
            # in _issued then, so release() leaves the slot to us.
            connection = await super().get_connection(*args, **kwargs)
        except BaseException:
            self._give_back()
            raise
        self._issued.add(connection)
        return connection

    async def release(self, connection: Any) -> None:
        try:
            await super().release(connection)
        finally:
            if connection in self._issued:
                self._issued.discard(connection)
                self._give_back()


class WaitingPool(_BaseSyncPool):  # type: ignore[misc]
    """A thread-safe connection pool of at most ``max_connections``; callers beyond wait.

    One lock guards a counter of free slots; only a caller that finds none
    waits on a condition, so the uncontended path is two lock round trips.
    """

    #: Pool size when the store sets none: unbounded, as redis-py's own pool
    #: (each thread holds at most one connection at a time).
    DEFAULT_LIMIT: int | None = None

    @classmethod
    def build(cls, max_connections: int | None, wait_timeout: float, **kwargs: Any) -> Any:
        """A pool of ``max_connections`` (default :attr:`DEFAULT_LIMIT`)."""
        limit = cls.DEFAULT_LIMIT if max_connections is None else max_connections
        if limit is None:
            return _BaseSyncPool(**kwargs)
        return cls(max_connections=limit, wait_timeout=wait_timeout, **kwargs)

    def __init__(self, *, max_connections: int, wait_timeout: float, **kwargs: Any) -> None:
        self._limit = max_connections
        self._wait_timeout = wait_timeout
        super().__init__(max_connections=max_connections, **kwargs)

    def reset(self) -> None:
        # Also called in a forked child: its connections and slots start afresh.
        super().reset()
        self._guard = threading.Lock()
        self._slot_freed = threading.Condition(self._guard)
        self._free = self._limit
        self._sleepers = 0
        self._issued: set[Any] = set()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        with self._guard:
            if self._free == 0:
                self._sleepers += 1
                try:
                    if not self._slot_freed.wait_for(lambda: self._free > 0, self._wait_timeout):
                        raise _exhausted(self._wait_timeout, self._limit)
                finally:
                    self._sleepers -= 1
            self._free -= 1
        try:
            connection = super().get_connection(*args, **kwargs)
        except BaseException:
            self._give_back()
            raise
        with self._guard:
            self._issued.add(connection)
        return connection

    def _give_back(self) -> None:
        with self._guard:
            self._free += 1
            if self._sleepers:
                self._slot_freed.notify()

    def release(self, connection: Any) -> None:
        try:
            super().release(connection)
        finally:
            with self._guard:
                held = connection in self._issued
                if held:
                    self._issued.discard(connection)
                    self._free += 1
                    if self._sleepers:
                        self._slot_freed.notify()
