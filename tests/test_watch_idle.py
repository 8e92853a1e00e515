"""A watch that has nothing to deliver waits: it never spins on another namespace's changes."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import keyshelf

from .conftest import BACKENDS


def counted(backend: Any) -> list[int]:
    """Count the calls of ``backend.changes`` (an instance attribute shadows the method)."""
    calls = [0]
    original = backend.changes

    def changes(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    async def achanges(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await original(*args, **kwargs)

    backend.changes = achanges if asyncio.iscoroutinefunction(original) else changes
    return calls


FEED = [name for name in BACKENDS if name in ("memory", "sqlite", "file", "redis", "postgres")]


@pytest.mark.parametrize("name", FEED)
def test_a_sync_watch_does_not_spin_on_other_namespaces(name: str, tmp_path: Path) -> None:
    # One write in namespace "b" moves the store's revision past what a watch
    # of namespace "a" will ever be given: the watch must read a few times and
    # then wait, not read thousands of times a second until the next write in "a".
    with BACKENDS[name][0](tmp_path) as (url, options):
        kv = keyshelf.open(url, **options, history=1000)
        try:
            calls = counted(kv.backend)
            watch = kv.namespace("a").watch()
            seen: list[Any] = []
            follower = threading.Thread(target=lambda: seen.extend(watch), daemon=True)
            follower.start()
            kv.namespace("b").set("x", 1)
            time.sleep(0.5)
            spun = calls[0]
            kv.namespace("a").set("y", 2)
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                time.sleep(0.01)
            watch.close()
            follower.join(10)
            assert [(e.key, e.value) for e in seen[:1]] == [("y", 2)]
            # Thousands when it spins; a handful (doorbell rings, one-second slices) when not.
            assert spun < 30, spun
        finally:
            kv.clear()
            kv.namespace("b").clear()
            kv.close()


@pytest.mark.parametrize("name", FEED)
def test_an_async_watch_does_not_spin_on_other_namespaces(name: str, tmp_path: Path) -> None:
    with BACKENDS[name][0](tmp_path) as (url, options):

        async def main() -> None:
            async with keyshelf.open_async(url, **options, history=1000) as kv:
                try:
                    await kv.revision()
                    calls = counted(kv.backend)
                    watch = kv.namespace("a").watch()
                    first = asyncio.ensure_future(watch.__anext__())
                    await asyncio.sleep(0.1)
                    await kv.namespace("b").set("x", 1)
                    await asyncio.sleep(0.5)
                    spun = calls[0]
                    await kv.namespace("a").set("y", 2)
                    event = await asyncio.wait_for(first, 10)
                    await watch.aclose()
                    assert (event.key, event.value) == ("y", 2)
                    assert spun < 30, spun
                finally:
                    await kv.clear()
                    await kv.namespace("b").clear()

        asyncio.run(main())
