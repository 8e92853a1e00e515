"""Streaming listings over a large SQLite store: linear, whatever the page.

A listing streamed in pages (``iter_keys(prefix)``, the CLI's ``keyshelf keys
'PREFIX*'``) must cost about what one ``keys(prefix)`` call costs: each page
seeks from the last key returned, so the whole stream reads each key once.
When pages were bounded below by the prefix instead, every page rescanned the
range from its start and the stream grew quadratic (the CLI took 91.8 s over
1,000,000 keys where ``keys()`` took 3.1 s). Target: within 1.5x.

Each measurement is one whole listing, repeated ``rounds`` times with the
contestants interleaved; the report keeps the median.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyshelf

PREFIX = "p:"
# Keys outside the prefix on both sides, so that the prefix range is a real range.
_GROUPS = ("a:", PREFIX, "z:")


def load(path: Path, n: int, batch: int = 20_000) -> int:
    """Write ``n`` keys, a third of them under ``PREFIX``; return how many are under it."""
    under = 0
    with keyshelf.open(f"sqlite:///{path}") as kv:
        for start in range(0, n, batch):
            items: dict[str, int] = {}
            for i in range(start, min(start + batch, n)):
                group = _GROUPS[i % 3]
                under += group == PREFIX
                items[f"{group}{i:09d}"] = i
            kv.mset(items)
    return under


def _cli(path: Path, args: list[str]) -> int:
    """Run ``keyshelf keys [PATTERN]`` in a fresh process; count the lines it printed."""
    env = {**os.environ, "KEYSHELF_URL": f"sqlite:///{path}"}
    command = [sys.executable, "-m", "keyshelf", "keys", *args]
    done = subprocess.run(command, env=env, capture_output=True, check=True)
    return done.stdout.count(b"\n")


# The CLI's floor: a fresh process that imports keyshelf, lists with one
# keys(prefix) call and prints every key, as the CLI does.
_PRINT_KEYS = """
import sys, keyshelf
with keyshelf.open(sys.argv[1]) as kv:
    sys.stdout.write("".join(key + "\\n" for key in kv.keys(sys.argv[2])))
"""


def _script(path: Path, pattern: str) -> int:
    command = [sys.executable, "-c", _PRINT_KEYS, f"sqlite:///{path}", pattern]
    done = subprocess.run(command, capture_output=True, check=True)
    return done.stdout.count(b"\n")


def run(path: Path, n: int, rounds: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Time each listing ``rounds`` times; medians in seconds and ratios to ``keys(prefix)``."""
    started = time.perf_counter()
    under = load(path, n)
    log(
        f"  stream: loaded {n:,} keys ({under:,} under {PREFIX!r}) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    pattern = PREFIX + "*"
    kv = keyshelf.open(f"sqlite:///{path}")
    contestants: dict[str, Callable[[], int]] = {
        "keys(prefix)": lambda: len(kv.keys(pattern)),
        "iter_keys(prefix)": lambda: sum(1 for _ in kv.iter_keys(pattern)),
        "iter_items(prefix)": lambda: sum(1 for _ in kv.iter_items(pattern)),
        "iter_keys() (every key)": lambda: sum(1 for _ in kv.iter_keys()),
        "CLI keys PREFIX*": lambda: _cli(path, [pattern]),
        "CLI keys (every key)": lambda: _cli(path, []),
        "process: print keys(prefix)": lambda: _script(path, pattern),
    }
    expected = {"iter_keys() (every key)": n, "CLI keys (every key)": n}
    times: dict[str, list[float]] = {name: [] for name in contestants}
    try:
        for _ in range(rounds):
            for name, listing in contestants.items():
                start = time.perf_counter()
                got = listing()
                times[name].append(time.perf_counter() - start)
                if got != expected.get(name, under):
                    raise AssertionError(f"{name} listed {got} keys, expected {under}")
    finally:
        kv.close()
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["keys(prefix)"]
    out: dict[str, Any] = {"keys": n, "under_prefix": under, "rounds": rounds, "results": {}}
    for name, median in medians.items():
        out["results"][name] = {
            "seconds": round(median, 3),
            "spread": [round(min(times[name]), 3), round(max(times[name]), 3)],
            "vs_keys_prefix": round(median / base, 3),
        }
        log(f"  stream: {name:<24} {median:7.3f} s  {median / base:5.2f}x keys(prefix)")
    return out
