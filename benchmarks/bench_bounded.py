"""Bounded stores: the price of ``max_keys`` with eviction, against the same store unbounded.

Two groups of :mod:`benchmarks.run` (``--only bounded``), each in one run:

* SQLite: a store with ``max_keys=1000`` (LRU, the default policy) against
  the same store without limits, and ``diskcache.Cache`` with a
  ``size_limit`` (its own eviction, LRU policy ``least-recently-used``) as
  what a user would pick instead: per-call medians of a ``get`` hit and of a
  ``set`` of a new key (every round writes new keys, so the bounded store
  evicts all along). Targets: a ``get`` hit within 1.3x of the unbounded
  store; the throughput of new-key writes (:func:`throughput`, evictions
  included, 2x ``max_keys`` per round) within 1.5x of the unbounded store's;
  and the size held (``total_keys <= max_keys`` after the run). The same run
  measures a store bounded by a limit it never reaches: the part of the
  ratio that is the exact count alone.
* memory: ``memory://?max_keys=1000`` against the unbounded memory store and
  ``cachetools.LRUCache(1000)`` under a lock.

Reads of the bounded stores are LRU reads: they record the use (SQLite:
in process, flushed to the file's ranking every second or 1,024 keys).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools
import diskcache

import keyshelf

from .timing import Op

MAX_KEYS = 1000
HOT = 500  # keys read by "get hit": they fit in the bounded store
VALUE = "v" * 100
TARGETS = {"set new key": 1.5, "get hit": 1.3}


class Contestant:
    def __init__(self, name: str, ops: dict[str, Op], close: Callable[[], Any]) -> None:
        self.name = name
        self._ops = ops
        self.close = close

    def ops(self) -> dict[str, Op]:
        return self._ops


def _ops(get: Callable[[str], Any], put: Callable[[str, Any], Any]) -> dict[str, Op]:
    for i in range(HOT):
        put(f"hot:{i}", VALUE)
    fresh = itertools.count()
    return {
        # Reads first: no write in between, so every hot key is still there.
        "get hit": Op(lambda i: get(f"hot:{i % HOT}")),
        "set new key": Op(lambda i: put(f"new:{next(fresh)}", VALUE)),
    }


def keyshelf_contestant(url: str, name: str, stores: dict[str, Any]) -> Contestant:
    kv = keyshelf.open(url)
    stores[name] = kv
    return Contestant(name, _ops(kv.get, kv.set), kv.close)


def sqlite_contestants(workdir: Path, stores: dict[str, Any]) -> list[Contestant]:
    # diskcache counts bytes, not keys: a size_limit of MAX_KEYS values of
    # its stored size (about 100 bytes each plus its row overhead).
    cache = diskcache.Cache(
        str(workdir / "diskcache-bounded"),
        size_limit=MAX_KEYS * 100,
        eviction_policy="least-recently-used",
    )
    return [
        keyshelf_contestant(
            f"sqlite:///{workdir / 'bounded.db'}?max_keys={MAX_KEYS}",
            "keyshelf sqlite bounded",
            stores,
        ),
        keyshelf_contestant(f"sqlite:///{workdir / 'unbounded.db'}", "keyshelf sqlite", stores),
        Contestant("diskcache size_limit", _ops(cache.get, cache.set), cache.close),
    ]


def memory_contestants(stores: dict[str, Any]) -> list[Contestant]:
    lru: cachetools.LRUCache[str, Any] = cachetools.LRUCache(maxsize=MAX_KEYS)
    lock = threading.Lock()

    def get(key: str) -> Any:
        with lock:
            return lru.get(key)

    def put(key: str, value: Any) -> None:
        with lock:
            lru[key] = value

    return [
        keyshelf_contestant(f"memory://?max_keys={MAX_KEYS}", "keyshelf memory bounded", stores),
        keyshelf_contestant("memory://", "keyshelf memory", stores),
        Contestant("cachetools LRUCache", _ops(get, put), lambda: None),
    ]


def throughput(workdir: Path, *, rounds: int, writes: int) -> dict[str, Any]:
    """New-key writes per second, bounded (``max_keys``) against unbounded SQLite.

    Each round writes ``writes`` new keys to each store (they take turns, the
    first of each round changing), timed as a whole: the bounded store's
    evictions are in its time, as they are in a program's. A third store,
    bounded by a limit it never reaches, shows what the exact shared count
    costs before any eviction (its triggers run on every write; none evicts).
    The ratios are the medians of the per-round ratios.
    """
    import statistics
    import time

    bounded = keyshelf.open(f"sqlite:///{workdir / 'throughput-bounded.db'}?max_keys={MAX_KEYS}")
    plain = keyshelf.open(f"sqlite:///{workdir / 'throughput-unbounded.db'}")
    counting = keyshelf.open(f"sqlite:///{workdir / 'throughput-counting.db'}?max_keys={2**62}")
    stores = {"bounded": bounded, "unbounded": plain, "no eviction": counting}
    rates: dict[str, list[float]] = {name: [] for name in stores}
    try:
        for store in stores.values():  # fill to the limit first: every round evicts
            store.mset({f"fill:{i}": VALUE for i in range(MAX_KEYS)})
        written = 0
        names = list(stores)
        for r in range(rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                store = stores[name]
                started = time.perf_counter()
                for i in range(written, written + writes):
                    store.set(f"new:{i}", VALUE)
                rates[name].append(writes / (time.perf_counter() - started))
            written += writes

        def ratio(name: str) -> float:
            pairs = zip(rates[name], rates["unbounded"], strict=True)
            return round(statistics.median(u / b for b, u in pairs), 3)

        return {
            "writes_per_round": writes,
            "rounds": rounds,
            "bounded_per_s": round(statistics.median(rates["bounded"])),
            "unbounded_per_s": round(statistics.median(rates["unbounded"])),
            "ratio": ratio("bounded"),
            "no_eviction_per_s": round(statistics.median(rates["no eviction"])),
            "no_eviction_ratio": ratio("no eviction"),
            "total_keys": bounded.stats()["total_keys"],
            "new_keys_written": written,
        }
    finally:
        for store in stores.values():
            store.close()


def run(
    workdir: Path, *, rounds: int, calls: int, warmup: int, log: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both groups: ``({"SQLite": Group, "memory": Group}, sizes after the run)``."""
    from .run import Group, run_group

    groups: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    makers: dict[str, Callable[[dict[str, Any]], list[Contestant]]] = {
        "SQLite": lambda stores: sqlite_contestants(workdir, stores),
        "memory": memory_contestants,
    }
    for title, make in makers.items():
        stores: dict[str, Any] = {}
        contestants = make(stores)
        try:
            group = Group(
                f"bounded store, {title}", contestants[0].name, [c.name for c in contestants[1:]]
            )
            groups[title] = run_group(
                group, contestants, rounds=rounds, calls=calls, warmup=warmup, log=log
            )
            bounded = stores[contestants[0].name]
            stats = bounded.stats()
            written = rounds * (calls + warmup)
            sizes[title] = {
                "total_keys": stats["total_keys"],
                "max_keys": stats["max_keys"],
                "evictions": stats["evictions"],
                "new_keys_written": written,
            }
            log(f"  bounded {title}: {sizes[title]}")
        finally:
            for contestant in contestants:
                contestant.close()
    sizes["SQLite throughput"] = throughput(workdir, rounds=rounds, writes=2 * MAX_KEYS)
    log(f"  bounded SQLite throughput: {sizes['SQLite throughput']}")
    return groups, sizes


def checks(groups: dict[str, Any], sizes: dict[str, Any]) -> list[Any]:
    """The targets: bounded ÷ unbounded for set and get on SQLite; the size held."""
    from .run import Check

    out = []
    group = groups.get("SQLite")
    if group is not None:
        mine = group.median("get hit", group.ours)
        theirs = group.median("get hit", "keyshelf sqlite")
        if mine is not None and theirs:
            limit = TARGETS["get hit"]
            out.append(Check("SQLite bounded get hit ÷ unbounded", mine / theirs, limit))
    rate = sizes.get("SQLite throughput")
    if rate:
        out.append(
            Check(
                "SQLite unbounded ÷ bounded new-key writes/s (10x+ max_keys)",
                rate["ratio"],
                TARGETS["set new key"],
            )
        )
        out.append(
            Check("SQLite throughput run: total_keys ÷ max_keys", rate["total_keys"] / MAX_KEYS, 1)
        )
    for title, size in sizes.items():
        if title == "SQLite throughput":
            continue
        held = size["total_keys"] / MAX_KEYS
        out.append(Check(f"{title} bounded: total_keys ÷ max_keys", held, 1))
        out.append(
            Check(
                f"{title} bounded: new keys written ÷ max_keys",
                size["new_keys_written"] / MAX_KEYS,
                10,
                higher_is_better=True,
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bench_bounded [--rounds 5] [--calls 2000] [--warmup 300]``."""
    import argparse
    import sys
    import tempfile

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_bounded")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=300)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="keyshelf-bench-bounded-") as tmp:
        groups, sizes = run(
            Path(tmp),
            rounds=args.rounds,
            calls=args.calls,
            warmup=args.warmup,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    for group in groups.values():
        print(group.table(), end="\n\n")
    print("| target | value | limit | |\n|---|---:|---:|---|")
    for check in checks(groups, sizes):
        print(check.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
