"""Transactions across real processes (spawned) on every persistent backend.

Four processes (two through the sync API, two through the async API) each
run random transfers between ten accounts through ``kv.transaction()``:
the total is unchanged, no process ever reads a negative balance, and the
final balances are exactly the start plus every committed move the
processes report (so no committed transfer was lost or applied twice).

The default run does 50 transfers per process; ``make stress`` 500.

And one transaction whose key another process changes between the read and
the commit (events order the two exactly) is retried and sees the new value.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import keyshelf

from .helpers import PERSISTENT, location
from .spawning import run_workers
from .transaction_workers import ACCOUNTS, START, change_on_signal, transfer_worker

WORKERS = 4


def run_transfers(backend: str, tmp_path: Path, rounds: int) -> None:
    with location(backend, tmp_path) as (url, options):
        with keyshelf.open(url, **options) as kv:
            kv.mset(dict.fromkeys(ACCOUNTS, START))
        apis = ["sync", "async"] * (WORKERS // 2)
        outcomes = run_workers(
            transfer_worker,
            lambda who, barrier, results: (who, url, options, apis[who], rounds, barrier, results),
            WORKERS,
        )
        expected = dict.fromkeys(ACCOUNTS, START)
        committed = 0
        for who, api, moves, calls, negative, errors in outcomes:
            assert errors == [], f"worker {who} ({api}) failed: {errors}"
            assert negative == [], f"worker {who} ({api}) read negative balances: {negative}"
            assert calls >= rounds
            committed += len(moves)
            for source, target, amount in moves:
                expected[source] -= amount
                expected[target] += amount
        assert committed > 0
        with keyshelf.open(url, **options) as kv:
            balances = kv.mget(ACCOUNTS)
        assert sum(balances.values()) == START * len(ACCOUNTS)
        assert min(balances.values()) >= 0
        assert balances == expected


@pytest.mark.parametrize("backend", PERSISTENT)
def test_four_processes_transfer_between_accounts(backend: str, tmp_path: Path) -> None:
    run_transfers(backend, tmp_path, rounds=50)


@pytest.mark.stress
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", PERSISTENT)
def test_four_processes_transfer_between_accounts_soak(backend: str, tmp_path: Path) -> None:
    run_transfers(backend, tmp_path, rounds=500)


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("backend", PERSISTENT)
def test_a_key_changed_by_another_process_is_read_again(
    backend: str, api: str, tmp_path: Path
) -> None:
    with location(backend, tmp_path) as (url, options):
        with keyshelf.open(url, **options) as kv:
            kv.set("price", 10)
        ctx = multiprocessing.get_context("spawn")
        go, done = ctx.Event(), ctx.Event()
        other = ctx.Process(target=change_on_signal, args=(url, options, "price", 12, go, done))
        other.start()
        seen: list[int] = []

        def between() -> None:
            # After this attempt's read: the other process writes, then we go on.
            if len(seen) == 1:
                go.set()
                assert done.wait(120), "the other process never wrote"

        try:
            if api == "sync":
                with keyshelf.open(url, **options) as kv:

                    def reprice(tx: Any) -> int:
                        price = tx.get("price")
                        seen.append(price)
                        between()
                        tx.set("price", price + 1)
                        return int(price)

                    result = kv.transaction(reprice)
                    final = kv.get("price")
            else:

                async def run() -> tuple[int, int]:
                    async with keyshelf.open_async(url, **options) as akv:

                        async def reprice(tx: Any) -> int:
                            price = await tx.get("price")
                            seen.append(price)
                            await asyncio.to_thread(between)
                            tx.set("price", price + 1)
                            return int(price)

                        return await akv.transaction(reprice), await akv.get("price")

                result, final = asyncio.run(run())
            other.join(60)
            assert other.exitcode == 0
        finally:
            if other.is_alive():
                other.kill()
                other.join(10)
        # The first attempt's commit failed its check; the retry read 12.
        assert seen == [10, 12]
        assert result == 12 and final == 13
