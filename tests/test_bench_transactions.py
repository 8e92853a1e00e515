"""Smoke test of the benchmark group ``transactions`` (``python -m benchmarks``).

Runs it with tiny numbers (SQLite, and the local Redis and PostgreSQL when
they answer) and checks the shape of the report and that its targets are
checked, never a timing. The round trips it reports are asserted in
tests/backends/test_native_commit.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .bench_groups import run_group


def test_transactions_group_smoke(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed, report = run_group("transactions", monkeypatch, tmp_path, capsys)
    assert "### Checked commit" in printed
    sqlite = report["transactions"]["sqlite"]
    assert sqlite["commit (2 checks + 2 sets)"]["calls"] == 10
    assert sqlite["2 plain sets"]["calls"] == 10
    assert sqlite["ratio"] > 0
    whats = {target["what"] for target in report["targets"]}
    assert "sqlite commit (2 checks + 2 sets) ÷ 2 sets" in whats
    for server in ("redis", "postgres"):
        if server in report["transactions"]:
            assert report["transactions"][server]["round_trips"]["commit"] >= 1
            assert f"{server} round trips per commit" in whats
