"""Process entry points of the lock tests (imported by spawned processes).

Kept free of pytest and of the test fixtures so that a spawned worker starts
quickly; every outcome goes back to the parent through a queue.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

import keyshelf


def counter_worker(
    who: int,
    url: str,
    options: dict[str, Any],
    api: str,
    rounds: int,
    barrier: Any,
    results: Any,
) -> None:
    """Increment a plain get/set counter ``rounds`` times, each time only inside the lock.

    Reports ``(fencing token, counter value read)`` of every acquisition.
    """
    log: list[tuple[int, int]] = []
    errors: list[str] = []
    try:
        barrier.wait(60)
        if api == "sync":
            with keyshelf.open(url, **options) as kv:
                barrier.wait(60)
                for _ in range(rounds):
                    with kv.lock("counter", ttl=60) as lock:
                        value = kv.get("counter", 0)
                        kv.set("counter", value + 1)
                        log.append((lock.fencing_token, value))
        else:

            async def run() -> None:
                async with keyshelf.open_async(url, **options) as kv:
                    await asyncio.to_thread(barrier.wait, 60)
                    for _ in range(rounds):
                        async with kv.lock("counter", ttl=60) as lock:
                            value = await kv.get("counter", 0)
                            await kv.set("counter", value + 1)
                            log.append((lock.fencing_token, value))

            asyncio.run(run())
    except BaseException:
        errors.append(traceback.format_exc())
    finally:
        results.put((who, api, log, errors))


def expired_holder(
    url: str, options: dict[str, Any], api: str, taken: Any, go_on: Any, results: Any
) -> None:
    """Take the lock with a short lease, wait until another owner has it, then try to
    extend and release it; report what each attempt raised."""
    outcome: dict[str, Any] = {}
    try:
        if api == "sync":
            with keyshelf.open(url, **options) as kv:
                lock = kv.lock("job", ttl=0.3).acquire()
                outcome["token"] = lock.fencing_token
                taken.set()
                go_on.wait(60)
                for action in ("extend", "release"):
                    try:
                        getattr(lock, action)()
                        outcome[action] = "succeeded"
                    except keyshelf.LockNotOwnedError:
                        outcome[action] = "LockNotOwnedError"
        else:

            async def run() -> None:
                async with keyshelf.open_async(url, **options) as kv:
                    lock = await kv.lock("job", ttl=0.3).acquire()
                    outcome["token"] = lock.fencing_token
                    taken.set()
                    await asyncio.to_thread(go_on.wait, 60)
                    for action in ("extend", "release"):
                        try:
                            await getattr(lock, action)()
                            outcome[action] = "succeeded"
                        except keyshelf.LockNotOwnedError:
                            outcome[action] = "LockNotOwnedError"

            asyncio.run(run())
    except BaseException:
        outcome["error"] = traceback.format_exc()
    finally:
        results.put(outcome)
