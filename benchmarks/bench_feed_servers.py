"""Benchmark: the change feed on Redis and PostgreSQL.

Two measurements per server, in one run:

* **write overhead**: ``kv.set`` on a store with the feed on against ``kv.set``
  on a store of the same server with the feed off, interleaved by rounds
  (:func:`benchmarks.timing.compare`). Target: within 1.3x.
* **delivery latency across processes**: a watcher in another process follows
  the store with ``kv.watch()``; the writer sets a key to the wall-clock time
  of the write, spaced out so that each write meets an idle watcher (the
  doorbell must ring: LISTEN/NOTIFY, XREAD BLOCK), and the watcher records
  ``time of delivery - time of write``. Target: p99 within 20 ms.

Run ``python -m benchmarks.bench_feed_servers`` (servers from
``KEYSHELF_BENCH_REDIS`` / ``KEYSHELF_BENCH_POSTGRES`` or the local defaults);
:func:`run` is the entry for ``python -m benchmarks``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import keyshelf

from .timing import Op, compare

ON = "set, feed on"
OFF = "set, feed off"
WRITE_TARGET = 1.3
LATENCY_TARGET_MS = 20.0
DEFAULTS = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgres": "postgresql://127.0.0.1:5432/test",
}


def _where(backend: str, url: str, tag: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{'prefix' if backend == 'redis' else 'schema'}={tag}"


def _ops(kv: keyshelf.Store) -> Op:
    def put(i: int) -> None:
        kv.set(f"k{i % 100}", i)

    return Op(put)


def _watcher(url: str, count: int, ready: Any, out: Any) -> None:
    """Follow the store from now; send the delivery delays (ms) of ``count`` changes."""
    delays: list[float] = []
    with keyshelf.open(url) as kv:
        watch = kv.watch()
        start = kv.revision()
        ready.set()
        for event in watch:
            if event.revision <= start or event.key != "t":
                continue
            delays.append((time.time_ns() - int(event.value)) / 1e6)
            if len(delays) == count:
                break
    out.send(delays)


def latency(url: str, count: int, gap: float) -> dict[str, float]:
    """p50/p99 (ms) from a write in this process to its delivery in another one."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    mine, theirs = context.Pipe(duplex=False)
    process = context.Process(target=_watcher, args=(url, count, ready, theirs))
    process.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the watcher process did not start")
        with keyshelf.open(url) as kv:
            time.sleep(0.2)  # the watcher is waiting on its doorbell
            for _ in range(count):
                kv.set("t", time.time_ns())
                time.sleep(gap)
        if not mine.poll(60):
            raise RuntimeError("the watcher did not report")
        delays = sorted(mine.recv())
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
    return {
        "p50_ms": round(statistics.median(delays), 3),
        "p99_ms": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 3),
        "max_ms": round(delays[-1], 3),
        "deliveries": len(delays),
    }


def run(
    urls: dict[str, str],
    *,
    rounds: int,
    calls: int,
    warmup: int,
    log: Callable[[str], None],
    deliveries: int = 200,
    gap: float = 0.005,
) -> dict[str, Any]:
    """``{backend: {ON, OFF, "ratio", "latency"}}``; ``urls`` name fresh prefixes/schemas."""
    out: dict[str, Any] = {}
    for backend, base in urls.items():
        on_url = _where(backend, base, f"feed_on_{os.getpid()}")
        off_url = _where(backend, base, f"feed_off_{os.getpid()}")
        with keyshelf.open(on_url, history=10_000) as on, keyshelf.open(off_url) as off:
            results = compare(
                [(ON, _ops(on)), (OFF, _ops(off))], rounds=rounds, calls=calls, warmup=warmup
            )
            on.clear()
            off.clear()
        mine, theirs = results[ON].median_us, results[OFF].median_us
        delays = latency(on_url, deliveries, gap)
        out[backend] = {
            ON: results[ON].as_dict(),
            OFF: results[OFF].as_dict(),
            "ratio": mine / theirs,
            "latency": delays,
        }
        log(
            f"  feed {backend:<9} {ON} {mine:8.1f} µs | {OFF} {theirs:8.1f} µs "
            f"| ratio {mine / theirs:.2f} (target {WRITE_TARGET}) | write->delivery across "
            f"processes p50 {delays['p50_ms']:.2f} ms p99 {delays['p99_ms']:.2f} ms "
            f"(target {LATENCY_TARGET_MS:g})"
        )
    return out


def _drop(backend: str, url: str) -> None:
    """Remove the benchmark's prefixes/schemas."""
    pid = os.getpid()
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(url)
        try:
            for tag in (f"feed_on_{pid}", f"feed_off_{pid}"):
                names = list(client.scan_iter(match=f"{tag}:*", count=1000))
                if names:
                    client.unlink(*names)
        finally:
            client.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for tag in (f"feed_on_{pid}", f"feed_off_{pid}"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')


def main() -> int:
    urls = {
        "redis": os.environ.get("KEYSHELF_BENCH_REDIS", DEFAULTS["redis"]),
        "postgres": os.environ.get("KEYSHELF_BENCH_POSTGRES", DEFAULTS["postgres"]),
    }
    try:
        report = run(urls, rounds=7, calls=300, warmup=50, log=print)
    finally:
        for backend, url in urls.items():
            _drop(backend, url)
    json.dump(report, sys.stdout, indent=1, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
