"""The worked example of docs/coordination.md runs, and its fencing check refuses a late writer."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

import keyshelf

ROOT = Path(__file__).resolve().parents[1]


def example() -> str:
    text = (ROOT / "docs" / "coordination.md").read_text(encoding="utf-8")
    section = text.split("## Worked example", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1
    return blocks[0]


def test_the_fencing_example_refuses_a_late_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {
        "build_report": lambda: "report of holder 1",
        "log": logging.getLogger("coordination-example"),
    }
    exec(compile(example(), "docs/coordination.md", "exec"), namespace)
    publish, kv, reports = namespace["publish"], namespace["kv"], namespace["reports"]
    try:
        assert reports.execute("SELECT body, fence FROM report").fetchall() == [
            ("report of holder 1", 1)
        ]
        # A holder paused past its lease (token 1) writes after a later one (token 2).
        with kv.lock("report:daily", ttl=60) as later:
            assert later.fencing_token == 2
            assert publish("report of holder 2", later.fencing_token) is True
        assert publish("late report of holder 1", 1) is False
        assert reports.execute("SELECT body, fence FROM report").fetchall() == [
            ("report of holder 2", 2)
        ]
    finally:
        reports.close()
        kv.close()
    assert isinstance(kv, keyshelf.Store)
