"""Locks across real processes (spawned) on every persistent backend.

* Four processes (two through the sync API, two through the async API)
  increment one plain ``get``/``set`` counter, each time only inside
  ``kv.lock("counter")``: no increment is lost, and the fencing tokens are
  exactly 1..N in acquisition order (the acquisition with token ``t`` read
  the counter at ``t - 1``), so they are unique and increase with the order
  in which the lock was held.
* A holder whose lease ended (in another process) can neither extend nor
  release the lock a new owner took over; the new owner keeps it.

The default run does 100 increments per process; ``make stress`` 1,000.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import keyshelf

from .helpers import PERSISTENT, location
from .lock_workers import counter_worker, expired_holder
from .spawning import run_workers

WORKERS = 4


def run_counter(backend: str, tmp_path: Path, rounds: int) -> None:
    with location(backend, tmp_path) as (url, options):
        apis = ["sync", "async"] * (WORKERS // 2)
        outcomes = run_workers(
            counter_worker,
            lambda who, barrier, results: (who, url, options, apis[who], rounds, barrier, results),
            WORKERS,
        )
        log: list[tuple[int, int]] = []
        for who, api, acquired, errors in outcomes:
            assert errors == [], f"worker {who} ({api}) failed: {errors}"
            assert len(acquired) == rounds
            log.extend(acquired)
        total = WORKERS * rounds
        # Unique tokens, 1..N, and the holder of token t saw the counter at t - 1:
        # tokens grow in the order the lock was held, and no increment was lost.
        assert sorted(log) == [(token, token - 1) for token in range(1, total + 1)]
        with keyshelf.open(url, **options) as kv:
            assert kv.get("counter") == total
            assert kv.namespace(kv.namespace_name + ":locks").get("counter") == {
                "owner": None,
                "fencing_token": total,
                "lease_until": None,
            }


@pytest.mark.parametrize("backend", PERSISTENT)
def test_four_processes_lock_a_counter(backend: str, tmp_path: Path) -> None:
    run_counter(backend, tmp_path, rounds=100)


@pytest.mark.stress
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", PERSISTENT)
def test_four_processes_lock_a_counter_soak(backend: str, tmp_path: Path) -> None:
    run_counter(backend, tmp_path, rounds=1000)


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("backend", PERSISTENT)
def test_an_expired_holder_cannot_touch_the_new_holders_lock(
    backend: str, api: str, tmp_path: Path
) -> None:
    with location(backend, tmp_path) as (url, options):
        ctx = multiprocessing.get_context("spawn")
        taken, go_on, results = ctx.Event(), ctx.Event(), ctx.Queue()
        process = ctx.Process(
            target=expired_holder, args=(url, options, api, taken, go_on, results)
        )
        process.start()
        try:
            assert taken.wait(120), "the first holder never took the lock"
            with keyshelf.open(url, **options) as kv:
                # Blocks until the other process's 0.3 s lease has ended.
                new = kv.lock("job", ttl=60, timeout=120).acquire()
                go_on.set()
                outcome: Any = results.get(timeout=120)
                assert "error" not in outcome, outcome["error"]
                assert outcome["token"] == 1 and new.fencing_token == 2
                assert outcome["extend"] == "LockNotOwnedError"
                assert outcome["release"] == "LockNotOwnedError"
                # The new holder still holds it: nobody else gets it, and it
                # can extend and release it.
                with pytest.raises(keyshelf.LockNotAcquiredError):
                    kv.lock("job", ttl=60, blocking=False).acquire()
                new.extend(60)
                new.release()
                assert kv.lock("job", ttl=60, blocking=False).acquire().fencing_token == 3
            process.join(timeout=60)
            assert process.exitcode == 0
        finally:
            if process.is_alive():
                process.kill()
                process.join(10)
