"""The writer the kill -9 tests kill: mset batches, increments, delete_pattern, forever.

Run as ``python crash_writer.py URL API SEED FIRST_BATCH LIVE_FILE``, with
``API`` ``sync`` or ``async``. ``LIVE_FILE`` holds the JSON list of batch ids
present in the store (the ones it may delete). Protocol on stdout, one line
each, flushed at once (the pipe keeps what was written before the kill):

* ``R`` — the store is open;
* ``B M <batch> <size>`` / ``B I`` / ``B D <batch>`` — about to call ``mset``
  of a whole batch, ``increment("counter")``, ``delete_pattern`` of a batch;
* ``A <result>`` — that call returned (it is acknowledged).

A ``B`` line without its ``A`` is the operation in flight when the kill came:
it may or may not have been committed, but never partly.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any

import keyshelf


def batch_key(batch: int, index: int) -> str:
    return f"batch:{batch:07d}:{index:04d}"


def batch_pattern(batch: int) -> str:
    return f"batch:{batch:07d}:*"


def batch_value(batch: int, index: int, size: int, pad: int) -> dict[str, Any]:
    return {"batch": batch, "index": index, "size": size, "pad": "x" * pad}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Plan:
    """The random sequence of operations (the same for both APIs)."""

    def __init__(self, seed: int, first_batch: int, live: list[int]) -> None:
        self.rng = random.Random(seed)
        self.next_batch = first_batch
        self.live = list(live)

    def next(self) -> tuple[str, Any]:
        roll = self.rng.random()
        if roll < 0.2 and self.live:
            batch = self.live.pop(self.rng.randrange(len(self.live)))
            return "D", batch
        if roll < 0.55:
            return "I", None
        batch, self.next_batch = self.next_batch, self.next_batch + 1
        size = self.rng.randint(1, 120)
        pad = self.rng.randrange(0, 1500)
        items = {batch_key(batch, i): batch_value(batch, i, size, pad) for i in range(size)}
        self.live.append(batch)
        return "M", (batch, items)


def run_sync(url: str, plan: Plan) -> None:
    kv = keyshelf.open(url)
    say("R")
    while True:
        op, arg = plan.next()
        if op == "M":
            batch, items = arg
            say(f"B M {batch} {len(items)}")
            kv.mset(items)
            say("A True")
        elif op == "I":
            say("B I")
            say(f"A {kv.increment('counter')}")
        else:
            say(f"B D {arg}")
            say(f"A {kv.delete_pattern(batch_pattern(arg))}")


async def run_async(url: str, plan: Plan) -> None:
    kv = keyshelf.open_async(url)
    say("R")
    while True:
        op, arg = plan.next()
        if op == "M":
            batch, items = arg
            say(f"B M {batch} {len(items)}")
            await kv.mset(items)
            say("A True")
        elif op == "I":
            say("B I")
            say(f"A {await kv.increment('counter')}")
        else:
            say(f"B D {arg}")
            say(f"A {await kv.delete_pattern(batch_pattern(arg))}")


def main() -> None:
    url, api, seed, first_batch, live_file = sys.argv[1:6]
    plan = Plan(int(seed), int(first_batch), json.loads(Path(live_file).read_text()))
    if api == "sync":
        run_sync(url, plan)
    else:
        asyncio.run(run_async(url, plan))


if __name__ == "__main__":
    main()
