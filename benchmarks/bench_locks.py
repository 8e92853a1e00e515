"""Benchmark: an uncontended lock against the two calls it replaces.

``kv.lock(name, ttl)`` acquired and released, against ``setnx`` + ``delete``
(the lock people build by hand, without a fencing token and unsafe to
release), on the same store in the same run, interleaved by rounds
(:func:`benchmarks.timing.compare`). Both sides reuse one name, as a job
runner taking the same lock again and again does: the lock reads the released
record and swaps it (acquire), then swaps it from the record it wrote
(release), three backend calls against two. Target: within 2x.

Run as the ``locks`` group of ``python -m benchmarks`` (SQLite always, Redis and
PostgreSQL when their servers answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keyshelf

from .timing import Op, compare

LOCK = "lock acquire+release"
SETNX = "setnx+delete"
TARGET = 2.0


def _ops(kv: keyshelf.Store) -> list[tuple[str, Op]]:
    def lock(i: int) -> None:
        taken = kv.lock("bench-lock", 30).acquire()
        taken.release()

    def setnx(i: int) -> None:
        if not kv.setnx("bench-setnx", "owner"):
            raise AssertionError("setnx found the key held")
        kv.delete("bench-setnx")

    return [(LOCK, Op(lock)), (SETNX, Op(setnx))]


def run(
    urls: dict[str, str],
    *,
    rounds: int,
    calls: int,
    warmup: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``{backend: {LOCK: summary, SETNX: summary, "ratio": lock ÷ setnx}}`` (medians)."""
    out: dict[str, Any] = {}
    for backend, url in urls.items():
        with keyshelf.open(url) as kv:
            results = compare(_ops(kv), rounds=rounds, calls=calls, warmup=warmup)
            mine, theirs = results[LOCK].median_us, results[SETNX].median_us
            out[backend] = {
                LOCK: results[LOCK].as_dict(),
                SETNX: results[SETNX].as_dict(),
                "ratio": mine / theirs,
            }
            # Every timed and warm-up acquisition took the next fencing token.
            taken = kv.lock("bench-lock", 30).acquire()
            if taken.fencing_token != rounds * (calls + warmup) + 1:
                raise AssertionError(f"fencing token {taken.fencing_token} after the run")
            taken.release()
            log(
                f"  locks {backend:<9} {LOCK} {mine:8.1f} µs | {SETNX} {theirs:8.1f} µs "
                f"| ratio {mine / theirs:.2f}"
            )
    return out
