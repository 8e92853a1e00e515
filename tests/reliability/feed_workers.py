"""Process entry points of the change-feed tests (imported by spawned processes).

Kept free of pytest and of the test fixtures so that a spawned worker starts
quickly; every outcome goes back to the parent through a queue.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from typing import Any

import keyshelf

#: The key the writer sets last: a watcher that saw it has seen every write.
END = "~end"
KEYS = [f"key:{i}" for i in range(100)]


def _op(kv: Any, rng: random.Random) -> None:
    """One random write over :data:`KEYS` (some change nothing: they record nothing)."""
    key = rng.choice(KEYS)
    op = rng.randrange(10)
    try:
        if op < 4:
            kv.set(key, rng.choice([rng.randrange(1000), "v" * rng.randrange(5), [op, 1.5]]))
        elif op == 4:
            kv.delete(key)
        elif op == 5:
            kv.increment(key, rng.randrange(1, 9))
        elif op == 6:
            kv.mset({key: rng.random(), rng.choice(KEYS): None})
        elif op == 7:
            kv.set_metadata(key, {"n": rng.randrange(5)})
        elif op == 8:
            kv.delete_many([key, rng.choice(KEYS)])
        else:
            kv.set(key, rng.randrange(10), nx=True)
    except keyshelf.NotNumericError:
        pass


def writer(
    url: str, options: dict[str, Any], ops: int, seed: int, barrier: Any, results: Any
) -> None:
    """Run ``ops`` random writes, then set :data:`END`; report the final dump()."""
    try:
        with keyshelf.open(url, **options) as kv:  # no history=: the store's feed is on
            barrier.wait()
            rng = random.Random(seed)
            for _ in range(ops):
                _op(kv, rng)
            kv.set(END, True)
            results.put(("writer", kv.dump(), kv.revision(), None))
    except BaseException:
        results.put(("writer", None, None, traceback.format_exc()))


def _event(event: Any) -> tuple[Any, ...]:
    return (event.revision, event.type, event.key, event.value, event.version)


def sync_watcher(
    url: str,
    options: dict[str, Any],
    since: int,
    stop_after: int | None,
    barrier: Any,
    results: Any,
) -> None:
    """Follow the store from ``since`` until :data:`END` (or ``stop_after`` changes)."""
    try:
        with keyshelf.open(url, **options) as kv:
            seen: list[tuple[Any, ...]] = []
            with kv.watch(since=since) as watch:
                if barrier is not None:
                    barrier.wait()
                for event in watch:
                    seen.append(_event(event))
                    if event.key == END:
                        break
                    if stop_after is not None and len(seen) >= stop_after:
                        # Report, then wait to be killed (the parent SIGKILLs us).
                        results.put(("sync", seen, None))
                        time.sleep(3600)
            results.put(("sync", seen, None))
    except BaseException:
        results.put(("sync", None, traceback.format_exc()))


def async_watcher(
    url: str, options: dict[str, Any], since: int, barrier: Any, results: Any
) -> None:
    """The async API's watcher: follows from ``since`` until :data:`END`."""

    async def follow() -> list[tuple[Any, ...]]:
        seen: list[tuple[Any, ...]] = []
        async with keyshelf.open_async(url, **options) as kv, kv.watch(since=since) as watch:
            barrier.wait()
            async for event in watch:
                seen.append(_event(event))
                if event.key == END:
                    break
        return seen

    try:
        results.put(("async", asyncio.run(follow()), None))
    except BaseException:
        results.put(("async", None, traceback.format_exc()))
