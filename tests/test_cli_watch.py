"""``keyshelf watch``: lines and JSON objects per change, filters, refusals, a real follow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keyshelf

from .test_cli_support import invoke, no_env_store, one_error_line  # noqa: F401

SCRIPT = Path(sys.executable).with_name("keyshelf")


def _store(path: Path) -> str:
    url = str(path)
    with keyshelf.open(url, history=1000) as kv:
        kv.set("user:1", {"name": "Ann"})
        kv.set("other", 1.5)
        kv.set("user:1", b"\x00", ttl=3600)
        kv.delete("other")
    return url


def test_lines_replay_from_since(tmp_path: Path) -> None:
    url = _store(tmp_path / "s.db")
    result = invoke("watch", "--since", "0", "--count", "4", "--url", url)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        '1 set "user:1" {"name":"Ann"}',
        '2 set "other" 1.5',
        '3 set "user:1" {"$bytes":"AA=="}',
        '4 delete "other"',
    ]


def test_json_objects_with_prev_and_a_pattern(tmp_path: Path) -> None:
    url = _store(tmp_path / "s.db")
    result = invoke(
        "watch", "user:*", "--since", "1", "--count", "1", "--prev", "--json", "--url", url
    )
    assert result.exit_code == 0
    (line,) = result.stdout.splitlines()
    change = json.loads(line)
    assert change["revision"] == 3 and change["type"] == "set" and change["key"] == "user:1"
    assert change["value"] == {"$bytes": "AA=="} and change["version"] == 2
    assert change["prev"] == {"name": "Ann"} and change["namespace"] == "default"
    assert change["expires_at"].endswith("+00:00")


def test_a_store_without_the_feed_is_refused(tmp_path: Path) -> None:
    url = str(tmp_path / "plain.db")
    with keyshelf.open(url) as kv:
        kv.set("a", 1)
    result = invoke("watch", "--count", "1", "--url", url)
    assert result.exit_code == 2
    assert "history=" in one_error_line(result)


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    result = invoke("watch", "--url", str(tmp_path / "none.db"))
    assert result.exit_code == 4
    assert not (tmp_path / "none.db").exists()


def test_a_running_watch_prints_another_process_write_and_ends_on_ctrl_c(tmp_path: Path) -> None:
    url = _store(tmp_path / "s.db")
    env = {k: v for k, v in os.environ.items() if k != "KEYSHELF_URL"}
    process = subprocess.Popen(
        [str(SCRIPT), "watch", "--since", "4", "--url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        with keyshelf.open(url) as kv:  # opened without history=: it records all the same
            kv.set("late", [1, 2])
        assert process.stdout is not None
        assert process.stdout.readline() == '5 set "late" [1,2]\n'
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
