"""N processes x M increments of one key: throughput and lost updates.

Each worker process opens its own connection (or store), waits at a barrier
with the others and the parent, then increments the counter ``calls`` times.
The wall time runs from the barrier to the last worker's exit; afterwards the
parent reads the counter: ``lost = processes x calls - final value``, which
must be 0 for keyshelf. Processes are spawned (not forked), so every worker
starts clean.

Contestants: keyshelf at any URL (its ``increment``), raw sqlite3 (keyshelf's
own ``UPDATE … RETURNING`` statement, which is atomic), diskcache
(``Cache.incr``, atomic in a transaction) and sqlitedict (``d[k] = d[k] + 1``,
the only way it offers, which is not atomic across processes).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import sqlite3
import time
from pathlib import Path
from typing import Any

KEY = "hits"


def _worker(kind: str, target: str, calls: int, barrier: Any) -> None:
    if kind == "keyshelf":
        import keyshelf

        kv = keyshelf.open(target)
        kv.get(KEY)  # connect before the start
        barrier.wait()
        for _ in range(calls):
            kv.increment(KEY)
        kv.close()
    elif kind == "raw sqlite3":
        from keyshelf.backends.sqlite import _Statements

        sql = _Statements("keyshelf").increment
        conn = sqlite3.connect(target, timeout=60, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        barrier.wait()
        for _ in range(calls):
            row = conn.execute(sql, ("default", KEY, 1, math.floor(time.time() * 1000)))
            row.fetchone()
        conn.close()
    elif kind == "diskcache":
        import diskcache

        cache = diskcache.Cache(target)
        cache.get(KEY)
        barrier.wait()
        for _ in range(calls):
            cache.incr(KEY)
        cache.close()
    elif kind == "sqlitedict":
        from sqlitedict import SqliteDict

        d = SqliteDict(target, autocommit=True, journal_mode="WAL", outer_stack=False)
        d.get(KEY)
        barrier.wait()
        for _ in range(calls):
            d[KEY] = d.get(KEY, 0) + 1
        d.commit(blocking=True)
        d.close()
    else:  # pragma: no cover
        raise ValueError(kind)


def _prepare(kind: str, target: str) -> None:
    if kind == "keyshelf":
        import keyshelf

        with keyshelf.open(target) as kv:
            kv.set(KEY, 0)
    elif kind == "raw sqlite3":
        from .local import RawSQLite

        raw = RawSQLite(Path(target).parent, 1, path=Path(target))
        raw.put_rows([(KEY, 0)])
        raw.close()
    elif kind == "diskcache":
        import diskcache

        with diskcache.Cache(target) as cache:
            cache.set(KEY, 0)
    elif kind == "sqlitedict":
        from sqlitedict import SqliteDict

        with SqliteDict(target, autocommit=True, journal_mode="WAL", outer_stack=False) as d:
            d[KEY] = 0
            d.commit(blocking=True)


def _final(kind: str, target: str) -> int:
    if kind == "keyshelf":
        import keyshelf

        with keyshelf.open(target) as kv:
            return int(kv.get(KEY))
    if kind == "raw sqlite3":
        conn = sqlite3.connect(target)
        try:
            return int(
                conn.execute("SELECT value FROM keyshelf WHERE key = ?", (KEY,)).fetchone()[0]
            )
        finally:
            conn.close()
    if kind == "diskcache":
        import diskcache

        with diskcache.Cache(target) as cache:
            return int(cache.get(KEY))
    from sqlitedict import SqliteDict

    with SqliteDict(target, outer_stack=False) as d:
        return int(d[KEY])


def run(kind: str, target: str, processes: int, calls: int) -> dict[str, Any]:
    """Run the contest for one contestant; return throughput and lost updates."""
    _prepare(kind, target)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    workers = [
        ctx.Process(target=_worker, args=(kind, target, calls, barrier)) for _ in range(processes)
    ]
    for w in workers:
        w.start()
    barrier.wait(timeout=120)
    start = time.perf_counter()
    for w in workers:
        w.join()
    took = time.perf_counter() - start
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    if failed:
        raise RuntimeError(f"{kind}: worker exit codes {failed}")
    expected = processes * calls
    final = _final(kind, target)
    return {
        "processes": processes,
        "calls_per_process": calls,
        "seconds": round(took, 3),
        "increments_per_s": round(expected / took),
        "final": final,
        "lost_updates": expected - final,
    }
