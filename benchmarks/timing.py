"""Shared timing helpers: per-call samples, interleaved rounds, summaries, tables.

Every benchmark in this folder measures the same way:

* a *contestant* (keyshelf on one backend, or an anchor library doing the
  same job) offers operations as :class:`Op` objects: ``run(i)`` is the timed
  call for iteration ``i``; ``prepare(i)``, if given, runs untimed just before
  it (e.g. to create the key that a ``delete`` will remove);
* :func:`compare` runs one operation on every contestant for several rounds,
  rotating which contestant goes first each round, so that load from other
  processes on a shared machine hits every side alike; each round is a warm-up
  followed by ``calls`` individually timed calls (for the server backends,
  the contestants take those calls in turns, one call each);
* a :class:`Summary` keeps every sample: the median and p99 over all rounds,
  and the spread (lowest and highest per-round median).
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

clock = time.perf_counter_ns


@dataclass
class Op:
    """One operation of one contestant."""

    run: Callable[[int], Any]
    prepare: Callable[[int], Any] | None = None
    calls: int | None = None  # overrides the runner's calls per round (slow ops)
    warmup: int | None = None


@dataclass
class Summary:
    """Per-call latencies of one operation on one contestant, in nanoseconds."""

    samples: list[int] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)

    def add_round(self, samples: list[int]) -> None:
        self.samples.extend(samples)
        self.round_medians.append(statistics.median(samples))

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) / 1000

    @property
    def p99_us(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000

    @property
    def spread_us(self) -> tuple[float, float]:
        return min(self.round_medians) / 1000, max(self.round_medians) / 1000

    def as_dict(self) -> dict[str, Any]:
        low, high = self.spread_us
        return {
            "median_us": round(self.median_us, 3),
            "p99_us": round(self.p99_us, 3),
            "round_medians_us": [round(m / 1000, 3) for m in self.round_medians],
            "spread_us": [round(low, 3), round(high, 3)],
            "calls": len(self.samples),
        }


def time_calls(op: Op, calls: int, warmup: int, offset: int = 0) -> list[int]:
    """Warm up, then time ``calls`` calls of ``op`` one by one (ns each)."""
    run, prepare = op.run, op.prepare
    for i in range(warmup):
        if prepare is not None:
            prepare(offset + i)
        run(offset + i)
    samples = [0] * calls
    start = offset + warmup
    with _gc_paused():
        if prepare is None:
            for i in range(calls):
                t0 = clock()
                run(start + i)
                samples[i] = clock() - t0
        else:
            for i in range(calls):
                prepare(start + i)
                t0 = clock()
                run(start + i)
                samples[i] = clock() - t0
    return samples


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection inside: one would land on whichever side happens to be running."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compare(
    ops: Sequence[tuple[str, Op]],
    *,
    rounds: int,
    calls: int,
    warmup: int,
    by_call: bool = False,
) -> dict[str, Summary]:
    """Run one operation on every contestant, interleaved by rounds.

    ``ops`` is ``[(contestant name, op)]``. Round ``r`` starts with contestant
    ``r mod n`` so that each one goes first equally often. Every round of a
    contestant continues its iteration numbers (keys differ between rounds
    where an operation creates or deletes keys).

    ``by_call``: within a round, the contestants take turns call by call
    (:func:`time_turns`) instead of one block of calls each. For operations
    that wait on a server: an idle machine's round trip drifts by tens of
    percent from one block of 2,000 calls to the next (CPU sleep states and
    clock changes), which a block-by-block comparison would read as a ratio.
    """
    results = {name: Summary() for name, _ in ops}
    offsets = dict.fromkeys(results, 0)
    for r in range(rounds):
        order = list(ops[r % len(ops) :]) + list(ops[: r % len(ops)])
        if by_call and all(op.calls is None and op.prepare is None for _, op in order):
            for name, samples in time_turns(order, calls, warmup, offsets).items():
                results[name].add_round(samples)
                offsets[name] += calls + warmup
            continue
        for name, op in order:
            n = op.calls or calls
            w = op.warmup if op.warmup is not None else warmup
            results[name].add_round(time_calls(op, n, w, offsets[name]))
            offsets[name] += n + w
    return results


def time_turns(
    order: Sequence[tuple[str, Op]], calls: int, warmup: int, offsets: dict[str, int]
) -> dict[str, list[int]]:
    """Warm every contestant up, then time ``calls`` calls of each, taking turns call by call."""
    for name, op in order:
        for i in range(warmup):
            op.run(offsets[name] + i)
    runs = [(op.run, offsets[name] + warmup) for name, op in order]
    samples = [[0] * calls for _ in order]
    with _gc_paused():
        for i in range(calls):
            for (run, start), mine in zip(runs, samples, strict=True):
                t0 = clock()
                run(start + i)
                mine[i] = clock() - t0
    return {name: mine for (name, _), mine in zip(order, samples, strict=True)}


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("inf")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A markdown table; ``align`` is one letter per column (l or r), default r."""
    header = list(header)
    marks = [("---" if (align[i : i + 1] or "r") == "l" else "---:") for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_us(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"
