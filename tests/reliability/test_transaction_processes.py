"""Transactions across real processes (spawned) on every persistent backend.

Four processes (two through the sync API, two through the async API) each
run random transfers between ten accounts through ``kv.transaction()``:
the total is unchanged, no process ever reads a negative balance, and the
final balances are exactly the start plus every committed move the
processes report (so no committed transfer was lost or applied twice).

The default run does 50 transfers per process; ``make stress`` 500.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import keyshelf

from .helpers import PERSISTENT, location
from .spawning import run_workers
from .transaction_workers import ACCOUNTS, START, transfer_worker

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
