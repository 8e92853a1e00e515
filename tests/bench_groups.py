"""Runs one group of ``python -m benchmarks`` with tiny numbers, for the smoke tests.

The smoke tests check the shape of a group's report and that its targets are
checked, never a timing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_group(
    group: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[str, dict[str, Any]]:
    """Run ``--only=group`` (2 rounds of 5 calls); return what it printed and its JSON report."""
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks", None)
    from benchmarks import run

    out = tmp_path / f"{group}.json"
    code = run.main(
        [
            f"--only={group}",
            "--rounds=2",
            "--calls=5",
            "--warmup=1",
            f"--json={out}",
            f"--workdir={tmp_path}",
            "--quiet",
            *extra,
        ]
    )
    assert code == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return capsys.readouterr().out, report
