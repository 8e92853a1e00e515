"""The change-feed doorbell of sync backends served through the async API.

:class:`~._bridge.AsyncBridge` runs a sync backend's primitives inline or in
its worker threads; a blocking ``wait_changes`` would stall the loop (memory
runs inline) or hold a worker thread for the whole wait (SQLite, file). So
:class:`FeedBridge` waits on the event loop instead:

* a backend with ``add_feed_listener`` (memory) calls a listener after every
  recorded write; the listener wakes the waiting task through
  ``call_soon_threadsafe``, so delivery needs no thread and no polling;
* a backend with ``feed_probe`` (SQLite: ``PRAGMA data_version``; file: the
  file's change time) is probed every :data:`PROBE_INTERVAL` seconds on the
  loop (a probe does no waiting: microseconds);
* anything else gets the interface's default (sleep, then the caller reads).

Cancelling the waiting task removes its listener; nothing else is held.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ._bridge import _AsyncBridge

#: Seconds between two probes of a polled backend (SQLite, file) by an async watch.
PROBE_INTERVAL = 0.01


class _FeedBridge(_AsyncBridge):
    """An :class:`~._bridge.AsyncBridge` whose ``wait_changes`` never blocks the loop."""

    def __init__(self, backend: Any, **options: Any) -> None:
        super().__init__(backend, **options)
        self.change_feed = backend.change_feed
        # The bridge binds every primitive as an instance attribute; this one
        # is its own.
        self.wait_changes = self._wait_changes  # type: ignore[method-assign]

    async def _wait_changes(self, after: int, timeout: float, ns: str | None = None) -> None:
        backend = self.backend
        if self._closed:
            return
        listen = getattr(backend, "add_feed_listener", None)
        if listen is not None:
            await self._wait_listening(listen, after, timeout)
            return
        probe = getattr(backend, "feed_probe", None)
        if probe is None:
            await asyncio.sleep(min(timeout, 0.05))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        first = probe()
        while not self._closed and loop.time() < deadline:
            await asyncio.sleep(min(PROBE_INTERVAL, max(deadline - loop.time(), 0)))
            if probe() != first:
                return

    async def _wait_listening(self, listen: Any, after: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def ring() -> None:  # called under the backend's lock, maybe from another thread
            # A loop closed with this wait still pending (its finally never
            # ran) must not make another thread's write fail.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(woken.set)

        remove = listen(ring)
        try:
            if self.backend.revision(0) > after:
                return
            await asyncio.wait_for(woken.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            remove()


#: Typed as the bridge class: a type checker cannot see the forwards the bridge
#: adds at run time and would call the class abstract (see _bridge.py).
FeedBridge: Any = _FeedBridge
