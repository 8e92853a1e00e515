"""The callers of the stampede tests: threads, tasks and spawned processes.

Kept free of pytest and of the test fixtures so that a spawned process starts
quickly. Every factory counts its runs in the store itself (``increment`` of
``runs:<mode>``), so runs in other processes are counted too.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import keyshelf

KEY = "hot"
#: How long a factory works: long enough that every caller misses while it runs.
WORK = 0.05


def counter(mode: str) -> str:
    return f"runs:{mode}"


def same_name(function: Any) -> Any:
    # The sync and the async process memoize "the same function": one
    # module and qualname, as one function imported by every process would.
    function.__qualname__ = "shared_value"
    return function


def sync_caller(
    kv: Any,
    mode: str,
    behaviour: str = "ok",
    gate: threading.Event | None = None,
    lock_ttl: float = 30,
) -> Callable[[], Any]:
    """A function that asks ``kv`` for the shared value through ``mode``.

    ``behaviour``: ``"ok"``; ``"crash"`` (the first run raises); ``"slow"``
    (the first run sets ``gate`` and waits for the second run, which can
    only start by taking over the lease after it expired). ``lock_ttl``
    applies to ``get_or_set`` (memoize holds its lease 30 s).
    """

    def produce() -> str:
        run = kv.increment(counter(mode))
        if behaviour == "crash" and run == 1:
            time.sleep(WORK)
            raise RuntimeError("factory crashed")
        if behaviour == "slow" and gate is not None:
            if run == 1:
                gate.set()  # the test now lets the lease expire
                taken_over.wait(120)
            else:
                taken_over.set()
        time.sleep(WORK)
        return f"value-{run}"

    taken_over = threading.Event()

    if mode == "get_or_set":
        return lambda: kv.get_or_set(KEY, produce, lock_ttl=lock_ttl)

    def shared_value(n: int) -> str:
        return produce()

    return lambda: kv.memoize()(same_name(shared_value))(7)


def async_caller(kv: Any, mode: str, behaviour: str = "ok") -> Callable[[], Any]:
    """The async twin of :func:`sync_caller` (``"ok"`` and ``"crash"``)."""

    async def produce() -> str:
        run = await kv.increment(counter(mode))
        await asyncio.sleep(WORK)
        if behaviour == "crash" and run == 1:
            raise RuntimeError("factory crashed")
        return f"value-{run}"

    if mode == "get_or_set":
        return lambda: kv.get_or_set(KEY, produce)

    async def shared_value(n: int) -> str:
        return await produce()

    return lambda: kv.memoize()(same_name(shared_value))(7)


def outcome(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        return "value", call()
    except RuntimeError as exc:
        return "error", str(exc)


async def aoutcome(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        return "value", await call()
    except RuntimeError as exc:
        return "error", str(exc)


def process_worker(
    url: str,
    options: dict[str, Any],
    api: str,
    modes: list[str],
    behaviour: str,
    barrier: Any,
    results: Any,
) -> None:
    """One process: for each mode, wait for all processes, then ask once."""
    try:
        found: list[tuple[str, tuple[str, str]]] = []
        if api == "sync":
            with keyshelf.open(url, **options) as kv:
                for mode in modes:
                    call = sync_caller(kv, mode, behaviour)
                    barrier.wait(120)
                    found.append((mode, outcome(call)))
        else:

            async def main() -> None:
                async with keyshelf.open_async(url, **options) as kv:
                    for mode in modes:
                        call = async_caller(kv, mode, behaviour)
                        barrier.wait(120)  # blocks the loop: nothing else runs on it
                        found.append((mode, await aoutcome(call)))

            asyncio.run(main())
        results.put(("ok", found))
    except BaseException:
        results.put(("failed", traceback.format_exc()))
