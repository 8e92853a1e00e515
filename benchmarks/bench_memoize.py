"""Memoized calls: keyshelf's ``memoize`` against ``diskcache`` and ``cachetools``.

Two groups of :mod:`benchmarks.run` (``--only memoize``):

* SQLite: ``@kv.memoize()`` on a SQLite store against
  ``@diskcache.Cache(...).memoize()`` (both persistent, both shared between
  processes). Target: a hit at most 0.8x diskcache's.
* memory: ``@kv.memoize()`` on a memory store against
  ``@cachetools.cached(LRUCache, lock=RLock())`` (thread-safe, as keyshelf
  is). Target: a hit within 1.5x of cachetools'.

Operations: a hit with one int argument and a hit with (str, int, keyword)
arguments, over 1,000 cached results; a miss (a new argument each call: the
call computes and stores), and for keyshelf the same miss with
``lock=False`` (no stampede protection: one get and one set, as the anchors
do), so the price of the lease is visible.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools
import diskcache

import keyshelf

from .timing import Op

CACHED = 1000
TARGETS = {"SQLite": ("diskcache", 0.8), "memory": ("cachetools", 1.5)}


def _ops(
    one: Callable[[Any], Any], three: Callable[..., Any], fresh: Callable[[Any], Any]
) -> dict[str, Op]:
    for i in range(CACHED):
        one(i)
        three(f"user:{i}", i, scale=2)
    return {
        "memoized hit (int)": Op(lambda i: one(i % CACHED)),
        "memoized hit (str, int, kw)": Op(
            lambda i: three(f"user:{i % CACHED}", i % CACHED, scale=2)
        ),
        "memoized miss": Op(lambda i: fresh(10_000_000 + i), calls=300, warmup=20),
    }


def _functions(decorate: Callable[[Callable[..., Any]], Any], tag: str) -> tuple[Any, Any, Any]:
    def one(x: int) -> int:
        return x * 2

    def three(name: str, n: int, *, scale: int = 1) -> str:
        return f"{name}/{n * scale}"

    def fresh(x: int) -> int:
        return x + 1

    for function in (one, three, fresh):  # distinct cache keys per contestant
        function.__qualname__ = f"{tag}.{function.__name__}"
    return decorate(one), decorate(three), decorate(fresh)


class Contestant:
    def __init__(self, name: str, ops: dict[str, Op], close: Callable[[], Any]) -> None:
        self.name = name
        self._ops = ops
        self.close = close

    def ops(self) -> dict[str, Op]:
        return self._ops


def keyshelf_contestant(url: str, name: str) -> Contestant:
    kv = keyshelf.open(url)
    ops = _ops(*_functions(kv.memoize(), "locked"))
    _, _, unlocked = _functions(kv.memoize(lock=False), "unlocked")
    ops["memoized miss (lock=False)"] = Op(lambda i: unlocked(10_000_000 + i), calls=300, warmup=20)
    return Contestant(name, ops, kv.close)


def sqlite_contestants(workdir: Path) -> list[Contestant]:
    cache = diskcache.Cache(str(workdir / "diskcache-memoize"))
    return [
        keyshelf_contestant(f"sqlite:///{workdir / 'memoize.db'}", "keyshelf sqlite"),
        Contestant("diskcache", _ops(*_functions(cache.memoize(), "dc")), cache.close),
    ]


def memory_contestants() -> list[Contestant]:
    def decorate(function: Callable[..., Any]) -> Any:
        return cachetools.cached(cachetools.LRUCache(maxsize=100_000), lock=threading.RLock())(
            function
        )

    return [
        keyshelf_contestant("memory://", "keyshelf memory"),
        Contestant("cachetools", _ops(*_functions(decorate, "ct")), lambda: None),
    ]


def run(
    workdir: Path, *, rounds: int, calls: int, warmup: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Both groups, interleaved by rounds: ``{"SQLite": Group, "memory": Group}``."""
    from .run import Group, run_group

    out: dict[str, Any] = {}
    for title, make in (
        ("SQLite", lambda: sqlite_contestants(workdir)),
        ("memory", memory_contestants),
    ):
        contestants = make()
        try:
            group = Group(
                f"memoize, {title}", contestants[0].name, [c.name for c in contestants[1:]]
            )
            out[title] = run_group(
                group, contestants, rounds=rounds, calls=calls, warmup=warmup, log=log
            )
        finally:
            for contestant in contestants:
                contestant.close()
    return out


def checks(groups: dict[str, Any]) -> list[Any]:
    """The targets: every memoized hit against its anchor."""
    from .run import Check

    out = []
    for title, (anchor, limit) in TARGETS.items():
        group = groups.get(title)
        if group is None:
            continue
        for op in group.results:
            mine, theirs = group.median(op, group.ours), group.median(op, anchor)
            if op.startswith("memoized hit") and mine is not None and theirs:
                out.append(Check(f"{title} {op} ÷ {anchor}", mine / theirs, limit))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bench_memoize [--rounds 5] [--calls 2000] [--warmup 300]``."""
    import argparse
    import sys
    import tempfile

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_memoize")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=300)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="keyshelf-bench-memoize-") as tmp:
        groups = run(
            Path(tmp),
            rounds=args.rounds,
            calls=args.calls,
            warmup=args.warmup,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    for group in groups.values():
        print(group.table(), end="\n\n")
    print("| target | value | limit | |\n|---|---:|---:|---|")
    for check in checks(groups):
        print(check.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
