"""Run one operation of one contestant in a loop, for a profiler to watch.

Usage::

    py-spy record --format raw -o set.txt -- \\
        python -m benchmarks.hotloop --store sqlite --op set --seconds 10
    python -m benchmarks.hotloop --store memory --op "mget 100" --profile

``--profile`` runs the loop under cProfile instead and prints the top
functions. The store is filled like the main benchmark (``--listing-keys``
sessions), so the profile shows what a timed call of ``python -m benchmarks``
does. ``--summarize FILE`` turns a py-spy ``raw`` (collapsed stacks) file into
the share of samples spent in the main frames.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from . import local

STORES = {
    "memory": lambda d, n: local.KeyshelfStore(d, n, "memory://", "keyshelf memory"),
    "sqlite": lambda d, n: local.KeyshelfStore(
        d, n, f"sqlite:///{d / 'keyshelf.db'}", "keyshelf sqlite"
    ),
    "raw": local.RawSQLite,
    "diskcache": local.DiskCache,
    "cachetools": local.CachetoolsTTL,
}


def summarize(path: Path, within: str = "Op.run", top: int = 30) -> str:
    """Share of samples per frame (inclusive) in a py-spy collapsed-stack file.

    Only stacks through a frame whose name starts with ``within`` count (by
    default the timed call), and each frame's share is of those samples.
    """
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [frame.split(" (")[0] for frame in stack.split(";")]
        starts = [i for i, frame in enumerate(frames) if frame.startswith(within)]
        if not starts:
            continue
        samples = int(n)
        total += samples
        for frame in set(frames[starts[0] :]):
            counts[frame] += samples
    lines = [f"{samples / total:6.1%}  {frame}" for frame, samples in counts.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hotloop", description=__doc__)
    p.add_argument("--store", choices=sorted(STORES), default="sqlite")
    p.add_argument("--url", default=None, help="keyshelf at this URL instead of --store")
    p.add_argument("--op", default="set")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--listing-keys", type=int, default=100_000)
    p.add_argument("--profile", action="store_true", help="cProfile the loop")
    p.add_argument("--summarize", type=Path, default=None, help="a py-spy raw file")
    p.add_argument("--within", default="KeyshelfStore.ops", help="with --summarize")
    args = p.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize, args.within))
        return 0
    with tempfile.TemporaryDirectory(prefix="keyshelf-hotloop-") as tmp:
        if args.url:  # e.g. redis://127.0.0.1:6379/0?prefix=hotloop: cleared at the end
            store = local.KeyshelfStore(Path(tmp), args.listing_keys, args.url, args.url)
        else:
            store = STORES[args.store](Path(tmp), args.listing_keys)
        store.load()
        op = store.ops()[args.op]
        run = op.run
        deadline = time.perf_counter() + args.seconds
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        i = calls = 0
        while time.perf_counter() < deadline:
            for _ in range(1000):
                if op.prepare is not None:
                    op.prepare(i)
                run(i)
                i += 1
            calls += 1000
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        if args.url:
            store.kv.clear()
        store.close()
    print(f"{calls:,} calls of {args.op!r} on {args.store}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
