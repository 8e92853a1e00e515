"""Long runs behind `make stress`: processes hammering one SQLite file with mixed operations."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

import keyshelf

pytestmark = pytest.mark.stress


def _worker(path: str, who: int, seconds: float, results: Any) -> None:
    acked = {"incr": 0, "append": 0, "cas": 0, "setnx": 0, "mset": 0}
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    with keyshelf.open(path) as kv:
        while time.monotonic() < deadline:
            try:
                kv.increment("counter")
                acked["incr"] += 1
                kv.append(f"log:{who}", "x")
                acked["append"] += 1
                current = kv.get("cas")
                if kv.compare_and_swap("cas", current, current + 1):
                    acked["cas"] += 1
                if kv.setnx(f"lock:{acked['incr'] % 50}", who, ttl=0.01):
                    acked["setnx"] += 1
                kv.mset({f"batch:{who}:{i}": acked["mset"] for i in range(10)})
                acked["mset"] += 1
                kv.delete(f"batch:{who}:3")
            except keyshelf.KVError as exc:  # any error reaching the caller is a failure
                errors.append(repr(exc))
    results.put((who, acked, errors))


def test_four_processes_mixed_operations_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "stress.db")
    with keyshelf.open(path) as kv:
        kv.set("cas", 0)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(path, i, 12.0, results)) for i in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert [errors for _, _, errors in outcomes] == [[], [], [], []]
    with keyshelf.open(path) as kv:
        assert kv.get("counter") == sum(acked["incr"] for _, acked, _ in outcomes)
        assert kv.get("cas") == sum(acked["cas"] for _, acked, _ in outcomes)
        for who, acked, _ in outcomes:
            assert kv.get(f"log:{who}") == "x" * acked["append"]
            assert kv.key_count(f"batch:{who}:*") == 9
