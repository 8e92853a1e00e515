"""Serve a sync backend through the async API, inline where that cannot stall the loop.

SQLite, the file backend and the memory backend have one implementation, the
sync one. The async store reaches them through :class:`AsyncBridge`:

* with ``threads=0`` (memory, whose calls never block) every primitive runs
  inline on the event-loop thread;
* otherwise the bridge owns a small worker-thread pool, and a primitive runs
  there unless the backend's *fast path* (``inline=``, see :mod:`._fastpath`)
  offers it inline: then it is first tried on the loop thread, and goes to a
  worker thread only when the attempt raises :class:`WouldBlock` (which it
  does before changing anything); an attempt that raised :class:`Busy` (the
  database was locked) is first tried inline again after the sleeps of
  :data:`._fastpath.BUSY_RETRIES`.

Inline calls never await, so a task calling them in a loop would never let
other tasks run: before an inline call, the bridge yields to the loop
(``asyncio.sleep(0)``) once every :data:`._fastpath.SLICE` seconds of
inline work per loop iteration (see :meth:`_AsyncBridge._turn`).
"""

from __future__ import annotations

import abc
import asyncio
import functools
import inspect
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import StoreClosedError
from ._base_async import AWAIT, AsyncBackend
from ._fastpath import BUSY_RETRIES, SLICE, Busy, FastPath, WouldBlock
from .base import Backend

_clock = time.perf_counter
#: An overrun of the last slice this long (seconds) or longer is not counted
#: against the next one (see :meth:`_AsyncBridge._new_turn`).
_FORGET = 0.01

# Hot primitives every caller passes positionally, by their number of
# arguments: their coroutines take exactly these (``*args`` costs ~0.1 µs on a
# ~0.5 µs memory get). tests/backends/test_fastpath.py checks the arities.
_POSITIONAL = {
    "get": 3,
    "exists": 3,
    "get_record": 3,
    "time_left": 3,
    "get_many": 3,
    "increment": 4,
}


class _AsyncBridge(AsyncBackend):
    """An :class:`AsyncBackend` that forwards every primitive to a sync one."""

    def __init__(
        self, backend: Backend, *, threads: int = 0, inline: FastPath | None = None
    ) -> None:
        self.backend = backend
        self.location = backend.location
        self.multi_key_atomic = backend.multi_key_atomic
        self._closed = False
        # When the current slice of inline work ends (see _turn), and when the
        # call that starts the next one was scheduled (-inf: not scheduled).
        self._turn_ends = -math.inf
        self._turn_scheduled = -math.inf
        self._bound: dict[str, Callable[..., Any]] = {}
        self._executor = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="keyshelf")
            if threads
            else None
        )
        # Each primitive becomes an attribute of this instance (it shadows the
        # class's generic forward): one coroutine per call, nothing looked up.
        for name in PRIMITIVES:
            fn = getattr(backend, name)
            if self._executor is None:
                method = self._inline(fn, _POSITIONAL.get(name))
            elif inline is not None and name in inline:
                method = self._fast(inline[name], fn, _POSITIONAL.get(name))
            else:
                method = self._threaded(fn)
            method.__name__ = name
            setattr(self, name, method)
            self._bound[name] = method
        if self._executor is None:
            # The memory backend's get, offered as a plain function to the
            # async store (see AsyncBackend.get_now): the store's coroutine is
            # then the only one per call. Its coroutine, awaited only when
            # get_now answers AWAIT, checks the clock on every call.
            self.get_now = self._now(backend.get)
            self.get = self._bound["get"] = self._checked(backend.get)  # type: ignore[method-assign]
        # A plain method, not a primitive: called inline on the loop's thread
        # (it does no I/O that can wait), and only if the backend has one.
        note_reads = backend.note_reads
        if getattr(note_reads, "__func__", None) is not Backend.note_reads:
            self.note_reads = note_reads  # type: ignore[method-assign]

    def _closed_error(self) -> StoreClosedError:
        return StoreClosedError(f"The store {self.location} is closed")

    async def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        """Every primitive of a closed store."""
        raise self._closed_error()

    async def _turn(self) -> None:
        """Give the loop a turn: inline work has run for a slice (or the store is closed).

        Also the closed check of the inline calls: :meth:`close` sets
        ``_turn_ends`` to minus infinity, so that a call on a closed store
        comes here, and the hot path pays for one comparison, not two.

        The slice is shared by every task of the store, per loop iteration:
        the first task to use it up schedules :meth:`_new_turn`, which runs
        at the start of the next iteration (before the tasks that yielded)
        and starts the next slice; a task that resumes after the slice is
        used up again makes its one call and yields. Those calls are taken
        off the next slice (:meth:`_new_turn`), so one iteration of the loop
        runs about one slice of inline work in all, however many tasks share
        the store (at least one call per waiting task).
        """
        if self._closed:
            raise self._closed_error()
        now = _clock()
        # A scheduled _new_turn that has not run within 10 ms belongs to a
        # loop (another thread's) that stopped before running it: schedule anew.
        if now - self._turn_scheduled > 0.01:
            self._turn_scheduled = now
            asyncio.get_running_loop().call_soon(self._new_turn)
        await asyncio.sleep(0)
        if self._closed:  # closed while this task waited for its turn
            raise self._closed_error()

    def _new_turn(self) -> None:
        """Start the next slice of inline work, shortened by the last one's overrun.

        The last iteration ran past the end of its slice by the calls of the
        other waiting tasks (one each) and whatever else the loop ran: the
        next slice is shorter by that much, so that an iteration with tasks
        waiting runs about one ``SLICE`` of inline work in all, however many
        tasks share the store, rather than a slice plus a call per task. A
        lone task has no overrun and keeps the whole slice (a shorter fixed
        slice would cost every call a loop iteration: docs/design.md). An
        overrun of 10 ms or more is a loop that was doing something else,
        not this store's turns: the slice is then whole.
        """
        self._turn_scheduled = -math.inf
        if not self._closed:
            now = _clock()
            overrun = now - self._turn_ends
            if 0.0 < overrun < _FORGET:
                self._turn_ends = now + max(0.0, SLICE - overrun)
            else:
                self._turn_ends = now + SLICE

    def _inline(self, fn: Callable[..., Any], arity: int | None) -> Callable[..., Any]:
        # Memory calls take ~0.1-2 µs: the clock is read on every 16th call of
        # a hot primitive (a counter in the closure costs less than the clock).
        # No closed check: close() replaces these coroutines (see there).
        calls = 0

        async def three(a: Any, b: Any, c: Any) -> Any:
            nonlocal calls
            calls += 1
            if not calls & 15 and _clock() >= self._turn_ends:
                await self._turn()
            return fn(a, b, c)

        async def four(a: Any, b: Any, c: Any, d: Any) -> Any:
            nonlocal calls
            calls += 1
            if not calls & 15 and _clock() >= self._turn_ends:
                await self._turn()
            return fn(a, b, c, d)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if _clock() >= self._turn_ends:
                await self._turn()
            return fn(*args, **kwargs)

        return three if arity == 3 else four if arity == 4 else call

    def _now(self, fn: Callable[[str, str, int], Any]) -> Callable[[str, str, int], Any]:
        # As the hot coroutines of _inline: the clock is read on every 16th call.
        calls = 0

        def now(a: str, b: str, c: int) -> Any:
            nonlocal calls
            calls += 1
            if not calls & 15 and _clock() >= self._turn_ends:
                return AWAIT  # the store awaits get, which gives the loop its turn
            return fn(a, b, c)

        return now

    def _checked(self, fn: Callable[[str, str, int], Any]) -> Callable[..., Any]:
        async def get(a: str, b: str, c: int) -> Any:
            if _clock() >= self._turn_ends:
                await self._turn()
            return fn(a, b, c)

        return get

    def _fast(
        self, attempt: Callable[..., Any], fn: Callable[..., Any], arity: int | None
    ) -> Callable[..., Any]:
        async def three(a: Any, b: Any, c: Any) -> Any:
            if _clock() >= self._turn_ends:
                await self._turn()
            try:
                return attempt(a, b, c)
            except Busy:
                return await self._retry(attempt, fn, (a, b, c), {})
            except WouldBlock:
                pass
            return await self._in_thread(fn, (a, b, c), {})

        async def four(a: Any, b: Any, c: Any, d: Any) -> Any:
            if _clock() >= self._turn_ends:
                await self._turn()
            try:
                return attempt(a, b, c, d)
            except Busy:
                return await self._retry(attempt, fn, (a, b, c, d), {})
            except WouldBlock:
                pass
            return await self._in_thread(fn, (a, b, c, d), {})

        async def call(*args: Any, **kwargs: Any) -> Any:
            if _clock() >= self._turn_ends:
                await self._turn()
            try:
                return attempt(*args, **kwargs)
            except Busy:
                return await self._retry(attempt, fn, args, kwargs)
            except WouldBlock:
                pass
            return await self._in_thread(fn, args, kwargs)

        return three if arity == 3 else four if arity == 4 else call

    async def _retry(
        self,
        attempt: Callable[..., Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """A call whose inline attempt found the database locked: see :class:`Busy`.

        Sleeps on the loop and tries inline again, at most ``BUSY_RETRIES``
        times; then (or on a :class:`WouldBlock` that is not busy) the call
        runs in a worker thread. Every attempt that failed changed nothing.
        """
        for delay in BUSY_RETRIES:
            await asyncio.sleep(delay)
            if self._closed:
                raise self._closed_error()
            try:
                return attempt(*args, **kwargs)
            except Busy:
                continue
            except WouldBlock:
                break
        return await self._in_thread(fn, args, kwargs)

    def _threaded(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._closed:
                raise self._closed_error()
            return await self._in_thread(fn, args, kwargs)

        return call

    async def _in_thread(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise self._closed_error()
        if self._executor is None:
            return fn(*args, **kwargs)
        return await self._in_thread(fn, args, kwargs)

    async def prepare(self) -> None:
        """Nothing to do: a sync backend is connected and checked when opened."""

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._call(self.backend.close)
        finally:
            self._closed = True
            self._turn_ends = -math.inf  # the inline calls' closed check (see _turn)
            self.get_now = None  # the store awaits get, which now refuses
            # Every primitive now raises StoreClosedError at once: the hot
            # coroutines of memory do not test _closed on each call.
            # (A subclass's own replacement of a primitive is left alone.)
            for name, method in self._bound.items():
                if vars(self).get(name) is method:
                    setattr(self, name, self._refuse)
            if self._executor is not None:
                # Wait for the worker threads to end (off the event loop), so that
                # a closed store leaves no thread behind.
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self._executor.shutdown)


def _forward(name: str) -> Callable[..., Any]:
    async def forward(self: _AsyncBridge, *args: Any, **kwargs: Any) -> Any:
        return await self._call(getattr(self.backend, name), *args, **kwargs)

    forward.__name__ = name
    forward.__doc__ = getattr(AsyncBackend, name).__doc__
    return forward


def _primitives() -> tuple[str, ...]:
    """The interface's public coroutine methods that the bridge does not implement itself.

    Read from :class:`AsyncBackend`, so a primitive added to the interface is
    bridged without a list to keep up to date.
    """
    return tuple(
        name
        for name, member in vars(AsyncBackend).items()
        if not name.startswith("_")
        and inspect.iscoroutinefunction(member)
        and name not in vars(_AsyncBridge)
    )


#: Every primitive the bridge forwards one-to-one to the sync backend.
PRIMITIVES = _primitives()

# Typed Any: a type checker cannot see forwards added with setattr and would
# call the class abstract; at run time nothing is (tests/backends/test_interface.py).
_built: Any = _AsyncBridge
for _name in PRIMITIVES:
    setattr(_built, _name, _forward(_name))
# The forwards implement the abstract primitives after the class was built:
# recompute what is still abstract (nothing), so the bridge can be instantiated.
abc.update_abstractmethods(_built)
_built.__name__ = _built.__qualname__ = "AsyncBridge"

#: The bridge class: an :class:`AsyncBackend` over a sync :class:`Backend`.
AsyncBridge: type[_AsyncBridge] = _built
