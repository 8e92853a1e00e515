"""Transactions across real processes (spawned) on every persistent backend.

Four processes (two through the sync API, two through the async API) each
run random transfers between ten accounts through ``kv.transaction()``:
the total is unchanged, no process ever reads a negative balance, and the
final balances are exactly the start plus every committed move the
processes report (so no committed transfer was lost or applied twice).

The default run does 50 transfers per process; ``make stress`` 500.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

import keyshelf

from .helpers import PERSISTENT, location
from .transaction_workers import ACCOUNTS, START, transfer_worker

WORKERS = 4


def run_transfers(backend: str, tmp_path: Path, rounds: int) -> None:
    with location(backend, tmp_path) as (url, options):
        with keyshelf.open(url, **options) as kv:
            kv.mset(dict.fromkeys(ACCOUNTS, START))
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
        apis = ["sync", "async"] * (WORKERS // 2)
        processes = [
            ctx.Process(
                target=transfer_worker,
                args=(who, url, options, apis[who], rounds, barrier, results),
            )
            for who in range(WORKERS)
        ]
        for process in processes:
            process.start()
        try:
            outcomes = [results.get(timeout=600) for _ in processes]
            for process in processes:
                process.join(timeout=60)
                assert process.exitcode == 0, f"worker exit code {process.exitcode}"
        finally:
            for process in processes:
                if process.is_alive():  # a deadlock: do not leave it behind
                    process.kill()
                    process.join(10)
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
