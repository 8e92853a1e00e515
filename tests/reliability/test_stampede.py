"""Stampede protection: many callers miss one key at once, the factory runs once.

32 threads (one shared sync store), 32 asyncio tasks (one async store) and 4
spawned processes (two through each API) ask for the same missing key
through ``get_or_set`` and through a memoized function, released together by
a barrier, on SQLite, Redis and PostgreSQL. The factory counts its runs in
the store (``increment``), so runs in every process are counted. Checked:

* the factory runs exactly once and every caller gets its value;
* a factory that crashes: its caller gets the error, exactly one waiter
  takes over (two runs in all), every other caller gets the second value;
* a factory slower than ``lock_ttl``: exactly one waiter takes over once the
  lease expired. On SQLite a fake clock moves past the lease (deterministic:
  the second lease never expires); on Redis and PostgreSQL, whose servers
  expire keys, the lease is 3 real seconds, far above what the taker needs
  (``@pytest.mark.stress``).

No assertion depends on timing: the counts hold whatever the scheduling.
The default share is a few seconds; process runs on Redis and PostgreSQL and
the real-time take-over are under ``@pytest.mark.stress``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.testing import FakeClock

from .helpers import location
from .stampede_workers import (
    aoutcome,
    async_caller,
    counter,
    outcome,
    process_worker,
    sync_caller,
)

CALLERS = 32
PROCESSES = 4
SERVERS = ("sqlite", "redis", "postgres")
MODES = ("get_or_set", "memoize")


def in_threads(kv: Any, call: Any, callers: int = CALLERS) -> list[tuple[str, str]]:
    barrier = threading.Barrier(callers)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait(60)
        found = outcome(call)
        with lock:
            results.append(found)

    threads = [threading.Thread(target=one) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a caller never returned"
    return results


def check_once(kv: Any, mode: str, results: list[tuple[str, str]], callers: int) -> None:
    assert kv.get(counter(mode)) == 1
    assert results == [("value", "value-1")] * callers


def check_crash(kv: Any, mode: str, results: list[tuple[str, str]], callers: int) -> None:
    # The crashing caller alone sees the error; one waiter ran the factory again.
    assert kv.get(counter(mode)) == 2
    assert sorted(results) == sorted(
        [("error", "factory crashed")] + [("value", "value-2")] * (callers - 1)
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", SERVERS)
@pytest.mark.parametrize("behaviour", ["ok", "crash"])
def test_threads(backend: str, mode: str, behaviour: str, tmp_path: Path) -> None:
    with location(backend, tmp_path) as (url, options), keyshelf.open(url, **options) as kv:
        results = in_threads(kv, sync_caller(kv, mode, behaviour))
        check = check_once if behaviour == "ok" else check_crash
        check(kv, mode, results, CALLERS)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", SERVERS)
@pytest.mark.parametrize("behaviour", ["ok", "crash"])
def test_tasks(backend: str, mode: str, behaviour: str, tmp_path: Path) -> None:
    async def main(url: str, options: dict[str, Any]) -> list[tuple[str, str]]:
        async with keyshelf.open_async(url, **options) as kv:
            call = async_caller(kv, mode, behaviour)
            return list(await asyncio.gather(*(aoutcome(call) for _ in range(CALLERS))))

    with location(backend, tmp_path) as (url, options):
        results = asyncio.run(main(url, options))
        with keyshelf.open(url, **options) as kv:
            check = check_once if behaviour == "ok" else check_crash
            check(kv, mode, results, CALLERS)


def in_processes(backend: str, tmp_path: Path, behaviour: str) -> None:
    with location(backend, tmp_path) as (url, options):
        ctx = multiprocessing.get_context("spawn")
        barrier, queue = ctx.Barrier(PROCESSES), ctx.Queue()
        processes = [
            ctx.Process(
                target=process_worker,
                args=(url, options, api, list(MODES), behaviour, barrier, queue),
            )
            for api in ["sync", "async"] * (PROCESSES // 2)
        ]
        for process in processes:
            process.start()
        try:
            reports = [queue.get(timeout=300) for _ in processes]
            for process in processes:
                process.join(60)
                assert process.exitcode == 0
        finally:
            for process in processes:
                if process.is_alive():  # a deadlock: do not leave it behind
                    process.kill()
                    process.join(10)
        failures = [report for status, report in reports if status != "ok"]
        assert failures == []
        with keyshelf.open(url, **options) as kv:
            for mode in MODES:
                results = [found for _, report in reports for m, found in report if m == mode]
                check = check_once if behaviour == "ok" else check_crash
                check(kv, mode, results, PROCESSES)


def test_processes_sqlite(tmp_path: Path) -> None:
    in_processes("sqlite", tmp_path, "ok")


@pytest.mark.stress
@pytest.mark.parametrize("backend", SERVERS)
@pytest.mark.parametrize("behaviour", ["ok", "crash"])
def test_processes(backend: str, behaviour: str, tmp_path: Path) -> None:
    in_processes(backend, tmp_path, behaviour)


def slow_owner(kv: Any, mode: str, clock: FakeClock | None, lock_ttl: float) -> None:
    """32 threads; the first run outlives its lease; exactly one waiter takes over."""
    started = threading.Event()
    call = sync_caller(kv, mode, "slow", gate=started, lock_ttl=lock_ttl)
    if clock is not None:

        def expire_the_lease() -> None:
            assert started.wait(120), "the factory never ran"
            clock.advance(lock_ttl + 1)  # the lease is past its TTL; nothing else is

        mover = threading.Thread(target=expire_the_lease)
        mover.start()
    results = in_threads(kv, call)
    if clock is not None:
        mover.join()
    assert kv.get(counter(mode)) == 2
    # The slow owner returns its own value (stored last); the one who took
    # over, value-2; the others whichever was stored when they looked.
    assert ("value", "value-1") in results and ("value", "value-2") in results
    assert {found for found in results} <= {("value", "value-1"), ("value", "value-2")}


@pytest.mark.parametrize("mode", MODES)
def test_slow_factory_lets_one_waiter_take_over_sqlite(mode: str, tmp_path: Path) -> None:
    clock = FakeClock()
    with (
        location("sqlite", tmp_path) as (url, options),
        keyshelf.open(url, clock=clock, **options) as kv,
    ):
        slow_owner(kv, mode, clock, 30)


@pytest.mark.stress
@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_slow_factory_lets_one_waiter_take_over_servers(backend: str, tmp_path: Path) -> None:
    with location(backend, tmp_path) as (url, options), keyshelf.open(url, **options) as kv:
        slow_owner(kv, "get_or_set", None, 3)
