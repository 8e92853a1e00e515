"""Smoke test of ``python -m benchmarks.bench_bounded``: its shape, never a timing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("diskcache")
pytest.importorskip("cachetools")


def test_bench_bounded_smoke(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks", None)
    from benchmarks import bench_bounded

    monkeypatch.setattr(bench_bounded, "MAX_KEYS", 20)
    monkeypatch.setattr(bench_bounded, "HOT", 10)
    assert bench_bounded.main(["--rounds=2", "--calls=150", "--warmup=1"]) == 0
    printed = capsys.readouterr().out
    assert "### bounded store, SQLite" in printed and "### bounded store, memory" in printed
    for target in (
        "SQLite unbounded ÷ bounded new-key writes/s (10x+ max_keys)",
        "SQLite bounded get hit ÷ unbounded",
        "SQLite bounded: total_keys ÷ max_keys",
        "memory bounded: new keys written ÷ max_keys",
    ):
        assert target in printed
    # The size is held whatever the timings: these two lines must say "met".
    for line in printed.splitlines():
        if "total_keys ÷ max_keys" in line or "new keys written ÷" in line:
            assert line.endswith("| met |"), line
