"""Smoke test of the benchmark group ``locks`` (``python -m benchmarks --only locks``).

Runs it with tiny numbers on SQLite and checks the shape of the report and
that its target is checked, never a timing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .bench_groups import run_group


def test_locks_group_smoke(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed, report = run_group("locks", monkeypatch, tmp_path, capsys)
    assert "### Uncontended lock" in printed
    sqlite = report["locks"]["sqlite"]
    assert sqlite["lock acquire+release"]["calls"] == 10
    assert sqlite["setnx+delete"]["calls"] == 10
    assert sqlite["ratio"] > 0
    whats = {target["what"] for target in report["targets"]}
    assert "sqlite lock acquire+release ÷ setnx+delete" in whats
