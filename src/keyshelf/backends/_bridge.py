"""Serve a sync backend through the async API.

SQLite and the memory backend have one implementation, the sync one. The
async store reaches them through :class:`AsyncBridge`: for SQLite every call
runs in a small worker-thread pool (the event loop never blocks on disk or on
a busy lock); for memory, whose calls never block, it runs inline.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import StoreClosedError
from ._base_async import AsyncBackend
from .base import Backend


class _AsyncBridge(AsyncBackend):
    """An :class:`AsyncBackend` that forwards every primitive to a sync one."""

    def __init__(self, backend: Backend, *, threads: int = 0) -> None:
        self.backend = backend
        self.location = backend.location
        self._closed = False
        self._executor = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="keyshelf")
            if threads
            else None
        )

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise StoreClosedError(f"The store {self.location} is closed")
        if self._executor is None:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def prepare(self) -> None:
        """Nothing to do: a sync backend is connected and checked when opened."""

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._call(self.backend.close)
        finally:
            self._closed = True
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
