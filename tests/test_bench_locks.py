"""Smoke test of the benchmark group ``locks`` (``python -m benchmarks --only locks``).

Runs it with tiny numbers on SQLite and checks the shape of the report and
that its target is checked, never a timing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_locks_group_smoke(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks", None)
    from benchmarks import run

    out = tmp_path / "locks.json"
    code = run.main(
        [
            "--only=locks",
            "--rounds=2",
            "--calls=5",
            "--warmup=1",
            f"--json={out}",
            f"--workdir={tmp_path}",
            "--quiet",
        ]
    )
    assert code == 0
    assert "### Uncontended lock" in capsys.readouterr().out
    report = json.loads(out.read_text())
    sqlite = report["locks"]["sqlite"]
    assert sqlite["lock acquire+release"]["calls"] == 10
    assert sqlite["setnx+delete"]["calls"] == 10
    assert sqlite["ratio"] > 0
    whats = {target["what"] for target in report["targets"]}
    assert "sqlite lock acquire+release ÷ setnx+delete" in whats
