"""The feed group of ``python -m benchmarks`` runs and reports every row (smoke run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_feed_group_smoke(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks", None)
    from benchmarks import bench_feed as run_feed
    from benchmarks import run

    out = tmp_path / "report.json"
    code = run.main(
        [
            "--only=feed",
            "--rounds=2",
            "--calls=20",
            "--warmup=5",
            "--feed-changes=20",
            "--feed-sustained=1500",
            f"--json={out}",
            f"--workdir={tmp_path}",
            "--quiet",
        ]
    )
    assert code == 0
    assert "### Change feed" in capsys.readouterr().out
    feed = json.loads(out.read_text())["feed"]
    for backend in ("memory", "sqlite", "file"):
        row = feed[backend]
        assert row["latency"]["changes"] == 20
        assert row["latency"]["p50_ms"] > 0
        pruned = row["pruning"]
        assert min(pruned["writes"], 1000) <= pruned["most_kept"] <= run_feed.prune_limit(backend)
    assert feed["sqlite"]["overhead"]["ratio"] > 0
    targets = json.loads(out.read_text())["targets"]
    assert any(t["what"] == "sqlite changes kept" and t["met"] for t in targets)
