"""The file backend's cost by store size, and what the cache tier saves.

Usage::

    python benchmarks/bench_file.py [--sizes 100,1000,10000] [--ops 200] [--dir DIR]

For each size, a ``file://`` store is filled with that many keys (small JSON
dicts, ~60 bytes encoded), then ``--ops`` calls of each operation run and the
median time per call is printed: ``set`` (rewrites the whole file: build,
write, fsync, rename, fsync the directory), ``set`` with ``durable=false`` (no
fsyncs), ``get`` (a ``stat`` of the file, then a dict lookup), ``get`` after
another store wrote (a full reload), ``get`` through ``cache="memory"``, and
the same for SQLite for comparison. Also: the file size, and export / import /
migrate throughput at the largest size.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import keyshelf


def median_us(fn: Callable[[int], object], ops: int) -> float:
    times = []
    for i in range(ops):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def fill(kv: keyshelf.Store, size: int) -> None:
    batch = 1000
    for start in range(0, size, batch):
        kv.mset(
            {
                f"key:{i:07d}": {"i": i, "name": f"user {i}"}
                for i in range(start, start + batch)
                if i < size
            }
        )


def measure(root: Path, size: int, ops: int) -> str:
    """One line of the table for a store of ``size`` keys."""
    path = root / f"s{size}.json"
    url = f"file://{path}"
    kv = keyshelf.open(url)
    fill(kv, size)
    set_us = median_us(lambda i: kv.set(f"key:{i % size:07d}", {"i": -i}), ops)
    get_us = median_us(lambda i: kv.get(f"key:{i % size:07d}"), ops)
    other = keyshelf.open(url)
    # Each get follows a write by another store: the reader reloads the file.
    reload_times = []
    for i in range(min(ops, 50)):
        other.set("bump", i)
        start = time.perf_counter()
        kv.get(f"key:{i % size:07d}")
        reload_times.append(time.perf_counter() - start)
    reload_us = statistics.median(reload_times) * 1e6
    other.close()
    kv.close()
    fast = keyshelf.open(url, durable=False)
    nosync_us = median_us(lambda i: fast.set(f"key:{i % size:07d}", {"i": i}), ops)
    fast.close()
    cached = keyshelf.open(url, cache="memory")
    cached.get("key:0000000")
    cached_us = median_us(lambda i: cached.get("key:0000000"), ops)
    cached.close()
    db = keyshelf.open(root / f"s{size}.db")
    fill(db, size)
    sqlite_set = median_us(lambda i: db.set(f"key:{i % size:07d}", {"i": -i}), ops)
    sqlite_get = median_us(lambda i: db.get(f"key:{i % size:07d}"), ops)
    db.close()
    return (
        f"{size:>7} {os.path.getsize(path) / 1024:>7.0f}KB {set_us / 1000:>7.2f}ms "
        f"{nosync_us / 1000:>8.2f}ms {get_us:>6.1f}us {reload_us / 1000:>8.2f}ms "
        f"{cached_us:>8.1f}us {sqlite_set:>8.1f}us {sqlite_get:>8.1f}us"
    )


def transfers(root: Path, size: int) -> str:
    """Export, import and migrate throughput on the SQLite store of ``size`` keys."""
    source = keyshelf.open(root / f"s{size}.db")
    start = time.perf_counter()
    buffer = io.BytesIO()
    source.export(buffer, all_namespaces=True)
    export_s = time.perf_counter() - start
    target = keyshelf.open("memory://")
    buffer.seek(0)
    start = time.perf_counter()
    target.import_(buffer)
    import_s = time.perf_counter() - start
    start = time.perf_counter()
    keyshelf.migrate(source, keyshelf.open(root / "copy.db"))
    migrate_s = time.perf_counter() - start
    return (
        f"{size} keys: export {size / export_s:,.0f} keys/s, import {size / import_s:,.0f} "
        f"keys/s, migrate sqlite->sqlite {size / migrate_s:,.0f} keys/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--dir", default=None, help="directory for the files (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        columns = [("file", 9), ("set", 9), ("set nosync", 10), ("get", 8), ("get reload", 10)]
        columns += [("get cached", 10), ("sqlite set", 10), ("sqlite get", 10)]
        print(f"{'keys':>7} " + " ".join(f"{name:>{width}}" for name, width in columns))
        for size in sizes:
            print(measure(root, size, args.ops))
        print()
        print(transfers(root, sizes[-1]))


if __name__ == "__main__":
    main()
