"""The worked examples of docs/coordination.md run: transfer, job claim, fencing."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

import keyshelf

ROOT = Path(__file__).resolve().parents[1]


def example(heading: str = "## Worked example: a lock guarding") -> str:
    """The one python block of the section of docs/coordination.md starting with ``heading``."""
    text = (ROOT / "docs" / "coordination.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
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


def test_the_transfer_example_runs_and_keeps_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    code = example("## Worked example: a transfer between two accounts")
    exec(compile(code, "docs/coordination.md", "exec"), namespace)
    kv, transfer = namespace["kv"], namespace["transfer"]
    try:
        assert capsys.readouterr().out == "{'account:alice': 70, 'account:bob': 50}\n"
        assert transfer("account:bob", "account:alice", 50) is True
        assert transfer("account:bob", "account:alice", 1) is False
        assert kv.mget(["account:alice", "account:bob"]) == {
            "account:alice": 120,
            "account:bob": 0,
        }
    finally:
        kv.close()


def test_the_job_claim_example_gives_each_job_to_one_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(
        compile(example("## Worked example: claiming a job"), "docs/coordination.md", "exec"),
        namespace,
    )
    kv, claim = namespace["kv"], namespace["claim"]
    try:
        assert capsys.readouterr().out == "worker-a\n"
        assert kv.get("job:1") == {"state": "running", "task": "send-mail"}
        assert 0 < kv.ttl("claim:job:1") <= 300
        # Two workers look at job:2 at once; the second one's commit finds
        # the version moved on and writes nothing.
        kv.set("job:2", {"state": "queued", "task": "x"})
        seen = kv.get_entry("job:2")

        class LookedEarlier:
            """The store as the slower worker saw it: job:2 still queued."""

            def get_entry(self, key: str) -> Any:
                return seen

            def atomic(self) -> Any:
                return kv.atomic()

        assert claim("job:2", "worker-a") is True
        namespace["kv"] = LookedEarlier()
        assert claim("job:2", "worker-b") is False
        namespace["kv"] = kv
        assert kv.get("claim:job:2") == "worker-a"
        assert claim("missing", "worker-c") is False
    finally:
        kv.close()
