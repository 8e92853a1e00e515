"""Process entry point of the transaction tests (imported by spawned processes).

Kept free of pytest and of the test fixtures so that a spawned worker starts
quickly; every outcome goes back to the parent through a queue.
"""

from __future__ import annotations

import asyncio
import functools
import random
import traceback
from typing import Any

import keyshelf

ACCOUNTS = [f"account:{i}" for i in range(10)]
START = 100
# Enough that four processes on ten accounts never exhaust them (each retry
# follows a commit of another process, so progress is certain).
RETRIES = 1000


class Tally:
    """What one worker saw: how often a transaction function ran, negative balances read."""

    def __init__(self) -> None:
        self.calls = 0
        self.negative: list[tuple[str, int]] = []


def decide(tally: Tally, source: str, target: str, amount: int, have: int, other: int) -> bool:
    tally.calls += 1
    for name, balance in ((source, have), (target, other)):
        if balance < 0:
            tally.negative.append((name, balance))
    return have >= amount


def sync_move(tx: Any, tally: Tally, source: str, target: str, amount: int) -> bool:
    have, other = tx.get(source), tx.get(target)
    if not decide(tally, source, target, amount, have, other):
        return False
    tx.set(source, have - amount)
    tx.set(target, other + amount)
    return True


async def async_move(tx: Any, tally: Tally, source: str, target: str, amount: int) -> bool:
    have, other = await tx.get(source), await tx.get(target)
    if not decide(tally, source, target, amount, have, other):
        return False
    tx.set(source, have - amount)
    tx.set(target, other + amount)
    return True


def transfer_worker(
    who: int,
    url: str,
    options: dict[str, Any],
    api: str,
    rounds: int,
    barrier: Any,
    results: Any,
) -> None:
    """Run ``rounds`` random transfers through ``kv.transaction``.

    Each moves a random amount from one account to another only if the
    source holds it. Reports every committed move ``(source, target,
    amount)``, how often the function ran (retries included) and any
    negative balance it read.
    """
    moves: list[tuple[str, str, int]] = []
    tally = Tally()
    errors: list[str] = []
    rng = random.Random(who)
    plan = []
    for _ in range(rounds):
        source, target = rng.sample(ACCOUNTS, 2)
        plan.append((source, target, rng.randint(1, 60)))
    try:
        barrier.wait(60)
        if api == "sync":
            with keyshelf.open(url, **options) as kv:
                barrier.wait(60)
                for move in plan:
                    fn = functools.partial(
                        sync_move, tally=tally, source=move[0], target=move[1], amount=move[2]
                    )
                    if kv.transaction(fn, retries=RETRIES):
                        moves.append(move)
        else:

            async def run() -> None:
                async with keyshelf.open_async(url, **options) as kv:
                    await asyncio.to_thread(barrier.wait, 60)
                    for move in plan:
                        fn = functools.partial(
                            async_move, tally=tally, source=move[0], target=move[1], amount=move[2]
                        )
                        if await kv.transaction(fn, retries=RETRIES):
                            moves.append(move)

            asyncio.run(run())
    except BaseException:
        errors.append(traceback.format_exc())
    finally:
        results.put((who, api, moves, tally.calls, tally.negative, errors))


def change_on_signal(
    url: str, options: dict[str, Any], key: str, value: Any, go: Any, done: Any
) -> None:
    """Wait for ``go``, set ``key`` to ``value`` through a store of this process, set ``done``."""
    with keyshelf.open(url, **options) as kv:
        if not go.wait(120):
            return
        kv.set(key, value)
        done.set()
