"""The async API never stalls the event loop on SQLite, even under writer contention.

A heartbeat task wants to run every millisecond while 8 tasks hammer one
SQLite file through one AsyncStore and 2 other processes write to it, each
holding the write lock once for 1 s (one after the other: the tasks start
while the second holds it) and otherwise writing as fast as they can. Calls
that find the database locked must go to the worker thread; a call that
waited on the loop's thread would stall the heartbeat for up to the hold.

The bound, :data:`STALL_BOUND_MS` = 500 ms, is documented in
docs/performance.md: half the hold, so a call that waits for the lock on the
loop's thread fails the test (with the loop connection's busy timeout
restored, it stalled 1,050 ms), and above the scheduling hiccups of a
loaded 2-core machine, where the loop's thread, busy with 8 hammering tasks,
is preempted: at most 146 ms with keyshelf in any bench scenario, and
314 ms once for the same busy loop with no keyshelf call at all (the floor
row, writers hammering, load ~7). The tight figures
(p99, max) come from ``python -m benchmarks --only async``, not from this
test: timings are not asserted in the default suite beyond this bound.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The longest stall of the event loop this test accepts (docs/performance.md).
STALL_BOUND_MS = 500.0
HOLD_MS = 1000.0


def _bench(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks", None)
    sys.modules.pop("benchmarks.bench_async", None)
    from benchmarks import bench_async

    return bench_async


def test_heartbeat_keeps_ticking_under_writer_contention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _bench(monkeypatch)
    result = bench.loop_stall(  # type: ignore[attr-defined]
        tmp_path / "stall.db", seconds=2.0, tasks=8, writers=2, hold_ms=HOLD_MS, holds=1
    )
    # The contention was real: calls found the lock taken and went to the thread.
    assert result.handed_over > 0
    # Nothing was lost: every task increment and every writer increment counted.
    assert result.counter == result.increments > 0
    assert result.writer_counters == result.writer_calls
    assert all(n > 0 for n in result.writer_calls)
    # The loop kept running: the heartbeat ticked, and never waited past the bound.
    assert result.ticks > 20
    assert result.max_ms < STALL_BOUND_MS, (
        f"the event loop stalled {result.max_ms:.1f} ms (bound {STALL_BOUND_MS} ms); "
        f"p99 {result.p99_ms:.1f} ms, longest inline call {result.longest_inline_ms:.1f} ms"
    )
