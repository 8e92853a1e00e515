"""The expired-key sweepers: :class:`ASweeper` (asyncio task) and :class:`Sweeper` (thread).

``tools/async_to_sync.py`` renames ``ASweeper`` to ``Sweeper`` in the sync
store it generates, so the two offer the same methods, one awaited and one
not. They are a pair rather than one class with an async-only branch because
their whole mechanism differs: a task on the running event loop against a
daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

from .errors import KVError

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
