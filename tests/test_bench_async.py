"""Smoke test of the benchmark group ``async`` (``python -m benchmarks --only async``).

Runs it with tiny numbers and checks the shape of the report and that its
targets are checked, never a timing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_async_group_smoke(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks", None)
    from benchmarks import run

    out = tmp_path / "async.json"
    code = run.main(
        [
            "--only=async",
            "--rounds=2",
            "--calls=5",
            "--warmup=1",
            "--stall-seconds=0.3",
            f"--json={out}",
            f"--workdir={tmp_path}",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "### SQLite, async API" in printed
    assert "### Event-loop stall" in printed
    report = json.loads(out.read_text())
    sqlite = report["groups"]["async sqlite"]["operations"]
    for op in ("get hit", "set", "increment"):
        assert set(sqlite[op]) == {
            "keyshelf async",
            "keyshelf sync",
            "aiosqlite",
            "aiosqlite one hop",
        }
        assert all(s["calls"] == 10 for s in sqlite[op].values())
    memory = report["groups"]["async memory"]["operations"]
    assert set(memory["get hit"]) == {"keyshelf async", "keyshelf sync"}
    stalls = report["loop_stall"]
    assert set(stalls) == {
        "writers hammering",
        "no keyshelf: 8 tasks each busy 30 µs per turn, writers hammering (the machine's floor)",
        "writers hammering, every call in the thread (no fast path)",
        "writers hammering, tasks pausing 1 ms after each call",
        "writers hammering, tasks pausing 1 ms after each call, no fast path",
        "writers paced (a pause of 0.5 ms after each write)",
        "no keyshelf: 8 tasks each busy 30 µs per turn, writers paced (the machine's floor)",
        "writers paced, every call in the thread (no fast path)",
        "writers holding the lock 100 ms at a time",
    }
    for r in stalls.values():
        assert r["ticks"] > 0 and r["task_calls"] > 0
        assert 0 <= r["stall_p50_ms"] <= r["stall_p99_ms"] <= r["stall_max_ms"]
    no_fast = stalls["writers hammering, every call in the thread (no fast path)"]
    assert no_fast["handed_to_thread"] >= no_fast["task_calls"]
    for label, r in stalls.items():
        # every writer process wrote, and its rate of commits is reported
        assert len(r["writer_commits_per_s"]) == 2, label
        assert all(n > 0 for n in r["writer_commits_per_s"]), label
        # the inline attempts are counted only where the fast path runs
        fast = "no fast path" not in label and "no keyshelf" not in label
        assert (r["inline_attempts"] > 0) == fast, label
        assert 0 <= r["busy"] <= r["inline_attempts"], label
        assert r["slow_inline_calls_cpu"] <= r["slow_inline_calls"], label
    whats = {target["what"] for target in report["targets"]}
    assert "SQLite async get hit ÷ aiosqlite" in whats
    assert "memory async increment ÷ sync" in whats
    assert "loop stall max ms (writers hammering)" in whats
    assert "loop stall p99 ms (writers paced (a pause of 0.5 ms after each write))" in whats
