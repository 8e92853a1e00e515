"""The async doorbell of sync backends (backends/_feed_bridge.py)."""

from __future__ import annotations

import asyncio
import warnings

import keyshelf


def test_a_watch_left_waiting_on_a_closed_loop_never_breaks_a_write() -> None:
    kv = keyshelf.open_async("memory://", history=10)
    loop = asyncio.new_event_loop()

    async def start() -> asyncio.Future[object]:
        watch = kv.watch()
        await watch.__aenter__()
        task = asyncio.ensure_future(watch.__anext__())
        while not kv.backend.backend._log._listeners:  # the wait registered its listener
            await asyncio.sleep(0)
        return task

    task = loop.run_until_complete(start())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Task was destroyed but it is pending"
        loop.close()
    # The listener of the abandoned wait is still registered: a write rings it.
    sync = kv.backend.backend
    sync.put("default", "k", ("i", 1), None, None, 0)
    assert sync.revision(0) == 1
    assert not task.done()
