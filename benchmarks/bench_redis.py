"""Benchmark: keyshelf's Redis backend against raw redis-py doing the same work.

Run: ``python benchmarks/bench_redis.py [--url redis://127.0.0.1:6379/0] [--api sync|async|both]``

Both sides use redis-py (with hiredis) over the same kind of connection to the
same server in the same run; raw redis-py uses plain commands on string keys
(``GET``, ``SET``, ``SET PX``, ``INCR``, ``MGET``, ``MSET``), keyshelf its
typed records (``HMGET``, one Lua script per write). Calls are timed one by
one, keyshelf and raw interleaved in alternating blocks, and the table shows
median latencies and the ratio keyshelf / raw (target: <= 1.1). Keys live
under a unique prefix and are deleted at the end; nothing else is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import redis
import redis.asyncio

import keyshelf

CALLS = 3000  # timed calls per side and operation
WARMUP = 500


def _median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def _cases(kv: Any, r: Any, tag: str) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    keys = [f"m{i}" for i in range(100)]
    raw_keys = [f"{tag}:{k}" for k in keys]
    mapping = {key: f"value-{i}" for i, key in enumerate(keys)}
    raw_mapping = {f"{tag}:{k}": v for k, v in mapping.items()}
    return {
        "get": (lambda: kv.get("g"), lambda: r.get(f"{tag}:g")),
        "set": (lambda: kv.set("s", "value"), lambda: r.set(f"{tag}:s", "value")),
        "set with TTL": (
            lambda: kv.set("t", "value", ttl=60),
            lambda: r.set(f"{tag}:t", "value", px=60_000),
        ),
        "increment": (lambda: kv.increment("n"), lambda: r.incr(f"{tag}:n")),
        "mget 100": (lambda: kv.mget(keys), lambda: r.mget(raw_keys)),
        "mset 100": (lambda: kv.mset(mapping), lambda: r.mset(raw_mapping)),
    }


def open_sync(
    url: str, prefix: str
) -> tuple[Any, Any, dict[str, tuple[Callable[[], Any], Callable[[], Any]]]]:
    """A keyshelf store, a raw client and the cases, with every key they read in place.

    Also used by the shared runner (``python -m benchmarks``).
    """
    kv = keyshelf.open(url, prefix=prefix)
    r = redis.Redis.from_url(url)
    cases = _cases(kv, r, prefix + "-raw")
    kv.set("g", "value")
    r.set(f"{prefix}-raw:g", "value")
    for ours, theirs in reversed(cases.values()):  # mset first: mget reads its keys
        ours()
        theirs()
    return kv, r, cases


def bench_sync(url: str, prefix: str) -> dict[str, tuple[float, float]]:
    """Each operation: keyshelf and raw calls alternate one by one (order flipped
    every call), so load from other processes hits both sides alike."""
    kv, r, cases = open_sync(url, prefix)
    results = {}
    clock = time.perf_counter_ns
    for name, (ours, theirs) in cases.items():
        mine: list[int] = []
        raw: list[int] = []
        for _ in range(WARMUP):
            ours()
            theirs()
        for i in range(CALLS):
            if i % 2:
                t0 = clock()
                ours()
                t1 = clock()
                theirs()
                t2 = clock()
                mine.append(t1 - t0)
                raw.append(t2 - t1)
            else:
                t0 = clock()
                theirs()
                t1 = clock()
                ours()
                t2 = clock()
                raw.append(t1 - t0)
                mine.append(t2 - t1)
        results[name] = (_median_us(mine), _median_us(raw))
    kv.close()
    r.close()
    return results


async def bench_async(url: str, prefix: str) -> dict[str, tuple[float, float]]:
    """As :func:`bench_sync`, awaiting each call on one event loop."""
    kv = keyshelf.open_async(url, prefix=prefix)
    r = redis.asyncio.Redis.from_url(url)
    cases: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]]
    cases = _cases(kv, r, prefix + "-raw")
    await kv.set("g", "value")
    await r.set(f"{prefix}-raw:g", "value")
    for ours, theirs in reversed(cases.values()):
        await ours()
        await theirs()
    results = {}
    clock = time.perf_counter_ns
    for name, (ours, theirs) in cases.items():
        mine: list[int] = []
        raw: list[int] = []
        for _ in range(WARMUP):
            await ours()
            await theirs()
        for i in range(CALLS):
            if i % 2:
                t0 = clock()
                await ours()
                t1 = clock()
                await theirs()
                t2 = clock()
                mine.append(t1 - t0)
                raw.append(t2 - t1)
            else:
                t0 = clock()
                await theirs()
                t1 = clock()
                await ours()
                t2 = clock()
                raw.append(t1 - t0)
                mine.append(t2 - t1)
        results[name] = (_median_us(mine), _median_us(raw))
    await kv.aclose()
    await r.aclose()
    return results


def cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    for pattern in (f"{prefix}:*", f"{prefix}-raw:*"):
        names = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(names), 500):
            client.unlink(*names[start : start + 500])
    client.close()


def table(title: str, results: dict[str, tuple[float, float]]) -> str:
    lines = [
        f"### {title}",
        "",
        "| operation | keyshelf (µs) | raw redis-py (µs) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, (ours, theirs) in results.items():
        lines.append(f"| {name} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--api", choices=["sync", "async", "both"], default="both")
    args = parser.parse_args()
    prefix = f"keyshelf-bench-{uuid.uuid4().hex[:12]}"
    info = redis.Redis.from_url(args.url).info("server")
    print(
        f"Redis {info['redis_version']} at {args.url}; redis-py {redis.__version__}, "
        f"Python {sys.version.split()[0]}; medians of {CALLS} calls each, interleaved\n"
    )
    try:
        if args.api in ("sync", "both"):
            print(table("sync API (redis.Redis)", bench_sync(args.url, prefix)))
            print()
        if args.api in ("async", "both"):
            print(
                table("async API (redis.asyncio.Redis)", asyncio.run(bench_async(args.url, prefix)))
            )
    finally:
        cleanup(args.url, prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
