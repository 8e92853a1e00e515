"""The whole-store commands in-process: keys, count, stats, namespaces,
clear-namespace, cleanup, and the progress bars of long work."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import keyshelf
from keyshelf.cli import output, store_commands

from .test_cli_support import (  # noqa: F401  (fixtures are used by name)
    invoke,
    no_env_store,
    one_error_line,
    url_fixture,
)


def fill(url: str, count: int, prefix: str = "k", namespace: str = "default") -> None:
    with keyshelf.open(url, namespace=namespace) as kv:
        kv.mset({f"{prefix}{i:05d}": i for i in range(count)})


def test_keys_lists_sorted_and_filters(url: str) -> None:
    invoke("mset", "user:2", "1", "user:1", "1", "order:1", "1", "--url", url)
    assert invoke("keys", "--url", url).stdout == "order:1\nuser:1\nuser:2\n"
    assert invoke("keys", "user:*", "--url", url).stdout == "user:1\nuser:2\n"
    assert invoke("keys", "user:[2]", "--url", url).stdout == "user:2\n"
    assert invoke("keys", "--limit", "2", "--url", url).stdout == "order:1\nuser:1\n"
    assert invoke("keys", "nothing*", "--url", url).stdout == ""


def test_keys_json_is_one_valid_array(url: str) -> None:
    fill(url, 2500)  # several listing batches
    result = invoke("keys", "--url", url, "--json")
    keys = json.loads(result.stdout)
    assert keys == [f"k{i:05d}" for i in range(2500)]
    assert json.loads(invoke("keys", "zzz*", "--url", url, "--json").stdout) == []
    limited = json.loads(invoke("keys", "--limit", "3", "--url", url, "--json").stdout)
    assert limited == ["k00000", "k00001", "k00002"]


def test_keys_streams_instead_of_loading_every_key(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(url, 10)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("keys() loads every key into one list")

    monkeypatch.setattr(keyshelf.Store, "keys", refuse)
    assert invoke("keys", "--url", url).stdout.count("\n") == 10


def test_keys_progress_only_when_piped_to_a_watched_terminal(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(url, 2500)
    updates: list[tuple[int, int | None]] = []

    class Recorder:
        def __init__(self, description: str, total: int | None) -> None:
            self.total = total

        def __enter__(self) -> Any:
            return lambda done, total: updates.append((done, total))

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(store_commands, "progress", Recorder)
    monkeypatch.setattr(store_commands, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(store_commands, "stdout_is_terminal", lambda: False)
    assert invoke("keys", "--url", url).stdout.count("\n") == 2500
    assert updates[-1] == (2500, 2500)
    assert len(updates) == 3  # one update per batch, not per key
    updates.clear()
    monkeypatch.setattr(store_commands, "stdout_is_terminal", lambda: True)
    invoke("keys", "--url", url)
    assert updates[-1] == (2500, None)  # no count query when nobody sees a bar


def test_progress_draws_on_a_terminal_and_is_silent_otherwise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with output.progress("Working", 10) as update:
        update(5, 10)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    with output.progress("Working", 10) as update:
        update(5, 10)
        update(10, 10)
    # rich renders to the (captured) stderr; what matters is that it ran and
    # the callback accepted updates, including an unknown total.
    with output.progress("Working", None) as update:
        update(3, None)


def test_count(url: str) -> None:
    invoke("mset", "a:1", "1", "a:2", "1", "b", "1", "--url", url)
    assert invoke("count", "--url", url).stdout == "3\n"
    assert invoke("count", "a:*", "--url", url, "--json").stdout == "2\n"


def test_stats(url: str) -> None:
    invoke("mset", "a", "1", "b", "2", "--url", url)
    invoke("expire", "a", "100", "--url", url)
    machine = json.loads(invoke("stats", "--url", url, "--json").stdout)
    assert machine["active_keys"] == 2 and machine["keys_with_ttl"] == 1
    human = invoke("stats", "--url", url)
    assert "active_keys" in human.stdout and "'default'" in human.stdout


def test_namespaces_and_clear_namespace(url: str) -> None:
    fill(url, 3, namespace="t1")
    fill(url, 2, namespace="t2")
    assert json.loads(invoke("namespaces", "--url", url, "--json").stdout) == {"t1": 3, "t2": 2}
    human = invoke("namespaces", "--url", url).stdout
    assert "t1" in human and "t2" in human
    refused = invoke("clear-namespace", "t1", "--url", url)
    assert refused.exit_code == 2
    assert "without --yes" in one_error_line(refused)
    cleared = invoke("clear-namespace", "t1", "--yes", "--url", url)
    assert (cleared.exit_code, cleared.stdout) == (0, "removed 3 keys from namespace 't1'\n")
    assert invoke("clear-namespace", "--namespace", "t2", "-y", "--url", url, "--json").stdout == (
        "2\n"
    )
    assert json.loads(invoke("namespaces", "--url", url, "--json").stdout) == {}


def test_clear_namespace_asks_on_a_terminal(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(url, 2, namespace="t1")
    monkeypatch.setattr(store_commands, "stdin_is_terminal", lambda: True)
    declined = invoke("clear-namespace", "t1", "--url", url, input="n\n")
    assert declined.exit_code == 1
    assert "aborted" in declined.stderr
    with keyshelf.open(url, namespace="t1") as kv:
        assert kv.size() == 2
    accepted = invoke("clear-namespace", "t1", "--url", url, input="y\n")
    assert accepted.exit_code == 0
    with keyshelf.open(url, namespace="t1") as kv:
        assert kv.size() == 0


def test_clear_namespace_refuses_a_bad_name(url: str) -> None:
    result = invoke("clear-namespace", "__x", "--yes", "--url", url)
    assert result.exit_code == 2
    assert "Namespaces cannot start with '__'" in one_error_line(result)


def test_cleanup_deletes_expired_keys(url: str) -> None:
    invoke("set", "short", "1", "--ttl", "50ms", "--url", url)
    invoke("set", "long", "1", "--ttl", "1h", "--url", url)
    time.sleep(0.1)
    result = invoke("cleanup", "--url", url)
    assert (result.exit_code, result.stdout) == (0, "removed 1 expired key\n")
    assert invoke("cleanup", "--url", url, "--json").stdout == "0\n"
    assert invoke("keys", "--url", url).stdout == "long\n"


def test_a_real_progress_bar_leaves_stdout_to_the_command(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rich redirects sys.stdout into its live display unless told not to;
    # then listed keys would land on stderr, around the bar.
    fill(url, 1500)
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(store_commands, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(store_commands, "stdout_is_terminal", lambda: False)
    # rich draws (and would redirect) only for what it takes for a terminal.
    result = invoke("keys", "--url", url, FORCE_COLOR="1")
    assert result.stdout.splitlines() == [f"k{i:05d}" for i in range(1500)]
    assert "k00000" not in result.stderr
    assert "Listing keys" in result.stderr
