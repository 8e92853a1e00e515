"""Sync/async pairs, so that the sync store is generated from the async one by renaming.

``tools/async_to_sync.py`` maps ``ASweeper`` to ``Sweeper`` and
``AsyncDunders`` to ``SyncDunders``; each pair offers the same methods, one
awaited and one not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import KeyNotFoundError, KVError

log = logging.getLogger("keyshelf")


class Sweeper:
    """Runs ``sweep()`` every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, sweep: Callable[[], object], interval: float) -> None:
        self._sweep = sweep
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keyshelf-cleanup", daemon=True)

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if not self._thread.is_alive() and not self._stopped.is_set():
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._sweep()
            except KVError as exc:  # a failed sweep must not kill the sweeper
                log.warning("keyshelf: expired-key cleanup failed: %s", exc)

    def stop(self) -> None:
        """Stop the thread and wait for a sweep in progress to finish."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


class ASweeper:
    """Runs ``await sweep()`` every ``interval`` seconds in an asyncio task until stopped."""

    def __init__(self, sweep: Callable[[], Awaitable[object]], interval: float) -> None:
        self._sweep = sweep
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task if an event loop is running (idempotent).

        A store created outside a running loop starts its sweep when it is
        entered with ``async with``.
        """
        if self._task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._sweep()
            except KVError as exc:
                log.warning("keyshelf: expired-key cleanup failed: %s", exc)

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


_MISSING = object()


class AsyncDunders:
    """Nothing extra: an async store cannot offer ``kv[key]``, ``in`` or ``len``."""

    __slots__ = ()


class SyncDunders:
    """The mapping protocol of the sync store, over its public methods."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)  # type: ignore[attr-defined]
        if value is _MISSING:
            raise KeyNotFoundError(f"Key not found: {key!r}")
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)  # type: ignore[attr-defined]

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):  # type: ignore[attr-defined]
            raise KeyNotFoundError(f"Key not found: {key!r}")

    def __contains__(self, key: object) -> bool:
        return bool(self.exists(key))  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return int(self.size())  # type: ignore[attr-defined]
