"""Four processes hammering one store with mixed operations: nothing lost, nothing torn.

Each persistent backend gets 4 processes (two through the sync API, two
through the async API) that open the store at the same moment and then, in a
loop, increment a shared counter, increment and decrement a counter of their
own, race ``setnx`` on one key per step, ``compare_and_swap`` a shared
counter, ``append`` tokens to shared keys, ``mset`` a batch and ``delete`` one
of its keys, and read another process's batch. Every acknowledged operation is
logged; at the end the store must agree with the logs exactly:

* shared counter = acknowledged increments; own counters = 3 x increments -
  decrements; the compare-and-swap counter = successful swaps;
* every ``setnx`` key has exactly one acknowledged winner, whose id it holds;
* every acknowledged append is in the shared keys exactly once, in order;
* no batch was ever seen half written; each batch has 9 keys;
* no error of any kind reached a caller (no "database is locked"), and every
  process finished within a bounded time (no deadlock).

The default run lasts ~1.5 s per backend; ``make stress`` 12 s.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from pathlib import Path
from typing import Any

import pytest

import keyshelf

from .helpers import PERSISTENT, location
from .workers import BATCH, contention_worker

WORKERS = 4


def run_contention(backend: str, tmp_path: Path, seconds: float) -> dict[str, Any]:
    with location(backend, tmp_path) as (url, options):
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
        apis = ["sync", "async"] * (WORKERS // 2)
        processes = [
            ctx.Process(
                target=contention_worker,
                args=(who, WORKERS, url, options, apis[who], seconds, barrier, results),
            )
            for who in range(WORKERS)
        ]
        started = time.monotonic()
        for process in processes:
            process.start()
        try:
            outcomes = [results.get(timeout=seconds + 180) for _ in processes]
            for process in processes:
                process.join(timeout=60)
                assert process.exitcode == 0, f"worker exit code {process.exitcode}"
        finally:
            for process in processes:
                if process.is_alive():  # a deadlock: do not leave it behind
                    process.kill()
                    process.join(10)
        elapsed = time.monotonic() - started
        for who, api, _acked, errors in outcomes:
            assert errors == [], f"worker {who} ({api}) saw errors: {errors}"
        acked = {who: acked for who, _api, acked, _errors in outcomes}
        with keyshelf.open(url, **options) as kv:
            return verify(kv, acked, seconds, elapsed)


def verify(kv: Any, acked: dict[int, dict[str, Any]], seconds: float, elapsed: float) -> Any:
    assert kv.get("counter") == sum(a["incr"] for a in acked.values())
    for who, a in acked.items():
        assert kv.get(f"own:{who}") == 3 * a["own_incr"] - a["own_decr"]
    assert kv.get("cas") == sum(a["cas"] for a in acked.values())
    # setnx: one acknowledged winner per key, and the key holds the winner.
    winners: dict[int, list[int]] = {}
    for who, a in acked.items():
        for step in a["setnx_won"]:
            winners.setdefault(step, []).append(who)
    assert all(len(w) == 1 for w in winners.values()), "two setnx winners for one key"
    once = kv.get_pattern("once:*")
    assert {int(k.split(":")[1]): v for k, v in once.items()} == {
        step: w[0] for step, w in winners.items()
    }
    # appends: every acknowledged token exactly once, in each process's order.
    tokens: dict[int, list[int]] = {who: [] for who in acked}
    for _key, text in sorted(
        kv.get_pattern("shared:*").items(), key=lambda item: int(item[0].split(":")[1])
    ):
        for who, step in re.findall(r"(\d+)\.(\d+);", text):
            tokens[int(who)].append(int(step))
    for who, a in acked.items():
        assert tokens[who] == a["appends"], f"worker {who}: appends lost or repeated"
    # mset all or nothing, seen from other processes too.
    for who, a in acked.items():
        assert a["torn_reads"] == [], f"worker {who} saw half an mset: {a['torn_reads'][:3]}"
        assert kv.key_count(f"m:{who}:*") == BATCH - 1
        assert set(kv.get_pattern(f"m:{who}:*").values()) == {a["mset"] - 1}
    operations = sum(a["operations"] for a in acked.values())
    figures = {
        "operations": operations,
        "per_second": operations / seconds,
        "increments": kv.get("counter"),
        "swaps": kv.get("cas"),
        "swap_tries": sum(a["cas_tries"] for a in acked.values()),
        "setnx_keys": len(winners),
        "appends": sum(len(a["appends"]) for a in acked.values()),
        "torn_reads": 0,
        "lost_updates": 0,
        "elapsed": elapsed,
    }
    assert operations > 0
    return figures


def report(backend: str, figures: dict[str, Any]) -> None:
    print(
        f"\n{backend}: {figures['operations']} acknowledged operations by {WORKERS} processes, "
        f"{figures['per_second']:.0f} ops/s; {figures['increments']} increments, "
        f"{figures['swaps']}/{figures['swap_tries']} swaps won, "
        f"{figures['setnx_keys']} setnx keys, "
        f"{figures['appends']} appends; lost updates 0, torn reads 0 "
        f"(wall time {figures['elapsed']:.1f} s)"
    )


@pytest.mark.parametrize("backend", PERSISTENT)
def test_four_processes_lose_nothing(backend: str, tmp_path: Path) -> None:
    report(backend, run_contention(backend, tmp_path, seconds=1.5))


@pytest.mark.stress
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", PERSISTENT)
def test_four_processes_soak(backend: str, tmp_path: Path) -> None:
    figures = run_contention(backend, tmp_path, seconds=12.0)
    report(backend, figures)
    assert figures["operations"] > 1000
