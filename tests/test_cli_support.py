"""Helpers shared by the CLI tests (no tests here).

Test modules import ``url_fixture`` (the ``url`` fixture: a fresh SQLite
store) and ``no_env_store`` (autouse: no ``$KEYSHELF_URL``, a temporary
working directory) to use them.

``invoke`` runs the real ``keyshelf`` group in-process through click's test
runner, which calls the group's ``main`` exactly as the console script does,
so exit codes and the one-line errors are the ones users see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import keyshelf
from keyshelf.cli.app import cli


def invoke(*args: str, input: str | bytes | None = None, **env: str) -> Result:
    """Run ``keyshelf ARGS...``; exceptions that escape the CLI fail the test."""
    runner = CliRunner()
    return runner.invoke(cli, list(args), input=input, env=env or None, catch_exceptions=False)


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed run (asserting there is exactly one)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def snapshot(url: str) -> dict[str, Any]:
    """Everything observable in a store: every namespace's items, TTL flags, metadata."""
    with keyshelf.open(url) as kv:
        state: dict[str, Any] = {}
        for ns in kv.list_namespaces():
            view = kv.namespace(ns)
            state[ns] = {
                key: (repr(value), view.ttl(key) is None, view.get_metadata(key))
                for key, value in view.dump().items()
            }
        return state


@pytest.fixture(name="url")
def url_fixture(tmp_path: Path) -> str:
    """A fresh SQLite store in a temporary directory."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(autouse=True)
def no_env_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A developer's $KEYSHELF_URL must never be the store a test writes to.
    monkeypatch.delenv("KEYSHELF_URL", raising=False)
    monkeypatch.chdir(tmp_path)
