"""Locks that the async/sync code generator renames into each other.

``tools/async_to_sync.py`` turns ``AsyncGate`` into ``Gate``: an async
backend guards its one-time initialisation with ``async with AsyncGate()``
and its generated sync twin gets a thread lock for ``with`` in the same
place. No driver import here, so every backend can use them.
"""

from __future__ import annotations

import asyncio
import threading


class AsyncGate(asyncio.Lock):
    """A lock for ``async with`` (the sync backend gets :class:`Gate`)."""


class Gate:
    """A lock for ``with``, the sync twin of :class:`AsyncGate`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
