"""Serve a sync backend through the async API.

SQLite and the memory backend have one implementation, the sync one. The
async store reaches them through :class:`AsyncBridge`: for SQLite every call
runs in a small worker-thread pool (the event loop never blocks on disk or on
a busy lock); for memory, whose calls never block, it runs inline.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import StoreClosedError
from ._base_async import AsyncBackend
from .base import Backend

# Every primitive of the backend interface, bridged one-to-one.
PRIMITIVES = (
    "get",
    "get_record",
    "update",
    "put_many",
    "delete",
    "set_expiry",
    "scan",
    "count",
    "delete_matching",
    "namespaces",
    "purge_expired",
    "stats",
    "total_size",
    "exists",
    "get_many",
    "put",
    "increment",
    "append",
    "compare_and_swap",
    "set_metadata",
    "sizes",
    "scan_records",
    "put_records",
)


class AsyncBridge(AsyncBackend):
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
    async def forward(self: AsyncBridge, *args: Any, **kwargs: Any) -> Any:
        return await self._call(getattr(self.backend, name), *args, **kwargs)

    forward.__name__ = name
    forward.__doc__ = getattr(AsyncBackend, name).__doc__
    return forward


for _name in PRIMITIVES:
    setattr(AsyncBridge, _name, _forward(_name))
