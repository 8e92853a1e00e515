"""Process entry points of the contention tests (imported by spawned processes).

Kept free of pytest and of the test fixtures so that a spawned worker starts
quickly; every outcome goes back to the parent through a queue.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from typing import Any

import keyshelf

BATCH = 10
APPENDS_PER_KEY = 100


class Caller:
    """Calls store methods through the sync or the async API alike."""

    def __init__(self, url: str, options: dict[str, Any], api: str) -> None:
        self.api = api
        if api == "sync":
            self.store: Any = keyshelf.open(url, **options)
            self.loop = None
        else:
            self.loop = asyncio.new_event_loop()
            self.store = keyshelf.open_async(url, **options)

    def __call__(self, method: str, *args: Any) -> Any:
        result = getattr(self.store, method)(*args)
        if self.loop is not None:
            return self.loop.run_until_complete(result)
        return result

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.store.aclose())
            self.loop.close()
        else:
            self.store.close()


def contention_worker(
    who: int,
    workers: int,
    url: str,
    options: dict[str, Any],
    api: str,
    seconds: float,
    barrier: Any,
    results: Any,
) -> None:
    """Mixed operations on shared and own keys for ``seconds``; report what was acknowledged."""
    acked: dict[str, Any] = {
        "incr": 0,
        "own_incr": 0,
        "own_decr": 0,
        "cas": 0,
        "cas_tries": 0,
        "appends": [],
        "setnx_won": [],
        "setnx_tries": 0,
        "mset": 0,
        "delete": 0,
        "reads": 0,
        "torn_reads": [],
        "operations": 0,
    }
    errors: list[str] = []
    call: Caller | None = None
    try:
        barrier.wait(60)
        # Every worker opens at the same moment: creating a fresh store races too.
        call = Caller(url, options, api)
        barrier.wait(60)
        deadline = time.monotonic() + seconds
        step = 0
        while time.monotonic() < deadline:
            try:
                call("increment", "counter")
                acked["incr"] += 1
                call("increment", f"own:{who}", 3)
                acked["own_incr"] += 1
                call("decrement", f"own:{who}")
                acked["own_decr"] += 1
                acked["setnx_tries"] += 1
                if call("setnx", f"once:{step}", who):
                    acked["setnx_won"].append(step)
                current = call("get", "cas")
                acked["cas_tries"] += 1
                if current is None:
                    call("setnx", "cas", 0)
                elif call("compare_and_swap", "cas", current, current + 1):
                    acked["cas"] += 1
                call("append", f"shared:{step // APPENDS_PER_KEY}", f"{who}.{step};")
                acked["appends"].append(step)
                call("mset", {f"m:{who}:{i}": step for i in range(BATCH)})
                acked["mset"] += 1
                call("delete", f"m:{who}:3")
                acked["delete"] += 1
                other = (who + 1 + step % (workers - 1)) % workers
                seen = call("get_many", [f"m:{other}:{i}" for i in range(BATCH)])
                acked["reads"] += 1
                if len(set(seen.values())) > 1:  # an mset seen half applied
                    acked["torn_reads"].append(seen)
                acked["operations"] += 11
            except keyshelf.KVError as exc:  # any error reaching the caller is a failure
                errors.append(f"{type(exc).__name__}: {exc}")
                if len(errors) > 20:
                    break
            step += 1
    except BaseException:
        errors.append(traceback.format_exc())
    finally:
        if call is not None:
            try:
                call.close()
            except BaseException:
                errors.append(traceback.format_exc())
        results.put((who, api, acked, errors))
