"""Smoke test of ``python -m benchmarks.bench_memoize``: its shape, never a timing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("diskcache")
pytest.importorskip("cachetools")


def test_bench_memoize_smoke(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks", None)
    from benchmarks import bench_memoize

    assert bench_memoize.main(["--rounds=1", "--calls=3", "--warmup=1"]) == 0
    printed = capsys.readouterr().out
    assert "### memoize, SQLite" in printed and "### memoize, memory" in printed
    for target in (
        "SQLite memoized hit (int) ÷ diskcache",
        "memory memoized hit (str, int, kw) ÷ cachetools",
    ):
        assert target in printed
