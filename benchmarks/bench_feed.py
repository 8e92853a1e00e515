"""Benchmark: the change feed (issue 15), per backend, in one run.

* **write overhead**: ``set`` on a store whose feed is on against ``set`` on a
  store of the same backend whose feed is off, interleaved by rounds
  (:func:`benchmarks.timing.compare`). Target: within 1.3x on SQLite, Redis
  and PostgreSQL. (With the feed off nothing is recorded at all: the off
  store is the plain backend.)
* **delivery latency**: a writer sets a key every :data:`GAP` seconds, the
  value being ``time.monotonic_ns()`` at the write (the system-wide monotonic
  clock, the same in every process); a watcher in another process (memory: a
  thread, since a memory store lives in one process) computes the delay when
  each change arrives. p50 and p99. Targets: p99 <= 100 ms on SQLite and file,
  <= 20 ms on Redis, PostgreSQL and memory.
* **pruning bound**: a store opened with ``history=HISTORY`` takes
  ``sustained`` sets (default :data:`SUSTAINED`; the file backend, which
  rewrites its whole document on every write, a third of them); after every
  500 the changes still kept are counted. Target: never more than
  ``HISTORY`` plus the backend's batch (128 on SQLite, 10% or 100 on memory
  and file).

Run as the ``feed`` group of ``python -m benchmarks``; Redis and PostgreSQL
rows appear when their servers answer and their backend has a feed.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import keyshelf

from .timing import Op, compare

ON = "set, feed on"
OFF = "set, feed off"
#: Seconds between two writes of the latency run.
GAP = 0.005
#: The retention and the write load of the pruning run.
HISTORY = 1000
SUSTAINED = 10_000
#: Targets: p99 delivery latency (ms) per backend, and the write overhead.
LATENCY_TARGET_MS = {"sqlite": 100.0, "file": 100.0, "memory": 20.0, "redis": 20.0}
LATENCY_TARGET_MS["postgres"] = 20.0
OVERHEAD_TARGET = 1.3
OVERHEAD_BACKENDS = ("sqlite", "redis", "postgres")


def _has_feed(url: str) -> bool:
    with keyshelf.open(url) as kv:
        return bool(kv.backend.change_feed)


def overhead(off_url: str, on_url: str, *, rounds: int, calls: int, warmup: int) -> dict[str, Any]:
    """``set`` with the feed on against off: summaries and the ratio of medians."""
    with keyshelf.open(off_url) as off, keyshelf.open(on_url, history=100_000) as on:
        ops = [
            (ON, Op(lambda i: on.set(f"key:{i % 100}", i))),
            (OFF, Op(lambda i: off.set(f"key:{i % 100}", i))),
        ]
        results = compare(ops, rounds=rounds, calls=calls, warmup=warmup)
    mine, theirs = results[ON].median_us, results[OFF].median_us
    return {ON: results[ON].as_dict(), OFF: results[OFF].as_dict(), "ratio": mine / theirs}


def _watch_delays(url: str, count: int, ready: Any, out: Any) -> None:
    """Follow ``url`` from now; put the delay (ns) of each of ``count`` changes."""
    with keyshelf.open(url) as kv, kv.watch() as watch:
        ready.set()
        delays = []
        for event in watch:
            delays.append(time.monotonic_ns() - event.value)
            if len(delays) >= count:
                break
    out.put(delays)


def latency(url: str, count: int, *, in_process: bool = False) -> dict[str, float]:
    """p50/p99 (ms) from a write to its delivery in another process (or thread)."""
    with keyshelf.open(url, history=100_000) as kv:
        if in_process:
            import queue

            ready_t, out_t = threading.Event(), queue.Queue()  # type: ignore[var-annotated]
            thread = threading.Thread(target=_watch_thread, args=(kv, count, ready_t, out_t))
            thread.start()
            ready_t.wait(60)
            _write(kv, count)
            delays = out_t.get(timeout=120)
            thread.join(60)
        else:
            ctx = multiprocessing.get_context("spawn")
            ready, out = ctx.Event(), ctx.Queue()
            process = ctx.Process(target=_watch_delays, args=(url, count, ready, out))
            process.start()
            try:
                if not ready.wait(120):
                    raise RuntimeError("the watcher process did not start")
                _write(kv, count)
                delays = out.get(timeout=120)
                process.join(60)
            finally:
                if process.is_alive():
                    process.kill()
    ordered = sorted(delays)
    return {
        "p50_ms": statistics.median(ordered) / 1e6,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6,
        "changes": len(ordered),
    }


def _watch_thread(kv: keyshelf.Store, count: int, ready: Any, out: Any) -> None:
    watch = kv.watch()
    ready.set()
    delays = []
    for event in watch:
        delays.append(time.monotonic_ns() - event.value)
        if len(delays) >= count:
            break
    watch.close()
    out.put(delays)


def _write(kv: keyshelf.Store, count: int) -> None:
    for i in range(count):
        kv.set(f"late:{i % 10}", time.monotonic_ns())
        time.sleep(GAP)


def pruning(url: str, writes: int) -> dict[str, int]:
    """The most changes kept while ``writes`` sets run on a ``history=HISTORY`` store."""
    most = 0
    with keyshelf.open(url, history=HISTORY) as kv:
        backend, ns = kv.backend, kv.namespace_name
        for i in range(writes):
            kv.set(f"key:{i % 500}", i)
            if i % 500 == 499:
                most = max(most, _kept(backend, ns))
    return {"history": HISTORY, "writes": writes, "most_kept": most}


def _kept(backend: Any, ns: str) -> int:
    try:
        return len(backend.changes(ns, 0, 10**9, 0))
    except keyshelf.ChangesCompactedError as exc:
        return len(backend.changes(ns, exc.oldest - 1, 10**9, 0))


def run(
    urls: dict[str, tuple[str, str]],
    *,
    rounds: int,
    calls: int,
    warmup: int,
    latency_changes: int,
    log: Callable[[str], None],
    sustained: int = SUSTAINED,
) -> dict[str, Any]:
    """``{backend: {"overhead": ..., "latency": ..., "pruning": ...}}``.

    ``urls``: backend -> (URL of a store left with the feed off, URL of another
    store of the same backend for the feed). Backends without a feed are
    skipped (reported as such).
    """
    out: dict[str, Any] = {}
    for backend, (off_url, on_url) in urls.items():
        if not _has_feed(on_url):
            out[backend] = {"skipped": "no change feed on this backend"}
            log(f"  feed {backend:<9} skipped: no change feed")
            continue
        row: dict[str, Any] = {}
        if backend in OVERHEAD_BACKENDS:
            row["overhead"] = overhead(off_url, on_url, rounds=rounds, calls=calls, warmup=warmup)
            log(
                f"  feed {backend:<9} set on {row['overhead'][ON]['median_us']:.1f} µs | off "
                f"{row['overhead'][OFF]['median_us']:.1f} µs | ratio {row['overhead']['ratio']:.2f}"
            )
        row["latency"] = latency(on_url, latency_changes, in_process=backend == "memory")
        log(
            f"  feed {backend:<9} delivery p50 {row['latency']['p50_ms']:.2f} ms | "
            f"p99 {row['latency']['p99_ms']:.2f} ms"
        )
        if backend in ("memory", "sqlite", "file", "redis", "postgres"):
            # On the store the overhead run left with the feed off: a fresh log.
            writes = sustained // 3 if backend == "file" else sustained
            row["pruning"] = pruning(off_url, writes)
            log(f"  feed {backend:<9} pruning: at most {row['pruning']['most_kept']} kept")
        out[backend] = row
    return out


def prune_limit(backend: str) -> int:
    """The most changes a backend may keep under ``history=HISTORY`` (its batch)."""
    return HISTORY + (128 if backend == "sqlite" else max(HISTORY // 10, 100))


def checks(report: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(what, value, limit)`` for every target of the feed (lower is better)."""
    found: list[tuple[str, float, float]] = []
    for backend, row in report.items():
        if "skipped" in row:
            continue
        if "overhead" in row:
            found.append(
                (f"{backend} set feed on ÷ off", row["overhead"]["ratio"], OVERHEAD_TARGET)
            )
        if backend in LATENCY_TARGET_MS:
            found.append(
                (
                    f"{backend} feed delivery p99 ms",
                    row["latency"]["p99_ms"],
                    LATENCY_TARGET_MS[backend],
                )
            )
        if "pruning" in row:
            found.append(
                (f"{backend} changes kept", row["pruning"]["most_kept"], prune_limit(backend))
            )
    return found


def render(report: dict[str, Any]) -> list[str]:
    """The markdown of the feed group."""
    from .timing import markdown_table

    rows = []
    for backend, row in report.items():
        if "skipped" in row:
            rows.append([backend, "-", "-", "-", row["skipped"]])
            continue
        over = row.get("overhead")
        prune = row.get("pruning")
        rows.append(
            [
                backend,
                f"{over[ON]['median_us']:.1f} / {over[OFF]['median_us']:.1f} = {over['ratio']:.2f}x"
                if over
                else "-",
                f"{row['latency']['p50_ms']:.2f}",
                f"{row['latency']['p99_ms']:.2f}",
                f"{prune['most_kept']} (history {prune['history']})" if prune else "-",
            ]
        )
    return [
        "",
        "### Change feed: write overhead, delivery latency across processes, pruning",
        "",
        markdown_table(
            [
                "backend",
                "set feed on / off µs (median)",
                "delivery p50 ms",
                "delivery p99 ms",
                "most changes kept",
            ],
            rows,
            "l",
        ),
    ]
