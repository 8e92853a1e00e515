"""The conformance suite's test_listings module on every backend, both APIs; SQLite's work.

The SQLite test here is keyshelf's own (the shipped suite is backend-neutral):
a streamed listing costs about what one listing of the range costs, counted in
SQLite virtual-machine steps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keyshelf.testing.conformance.test_listings import *  # noqa: F403
from keyshelf.testing.conformance.test_listings import fill


@pytest.fixture
def sqlite_steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count SQLite virtual-machine steps (in hundreds) on every connection opened."""
    steps = [0]
    connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)

        def tick() -> int:
            steps[0] += 1
            return 0

        conn.set_progress_handler(tick, 100)
        return conn

    monkeypatch.setattr(sqlite3, "connect", counting_connect)
    yield steps


@pytest.mark.parametrize("backend_name", ["sqlite", "sqlite+cache"], indirect=True)
@pytest.mark.parametrize("pattern", ["k:*", "k:0*", "k:*7", None])
def test_sqlite_stream_seeks_every_page(
    opener: Any, sqlite_steps: list[int], pattern: str | None
) -> None:
    # The report: iter_keys("k:*") over 200,000 keys took 5.1 s where
    # iter_keys("*") took 0.22 s, because every page was bounded below by the
    # prefix rather than by the last key returned, so SQLite rescanned the
    # range from its start each time. Counted in virtual-machine steps: a
    # stream of pages costs about what one listing of the range costs.
    kv = opener()
    n = 3000
    fill(kv, n)
    sqlite_steps[0] = 0
    expected = kv.keys(pattern)
    whole = sqlite_steps[0]
    assert whole > 0
    assert len(expected) >= 300
    for batch in (100, 1000):
        sqlite_steps[0] = 0
        assert list(kv.iter_keys(pattern, batch_size=batch)) == expected
        assert list(k for k, _ in kv.iter_items(pattern, batch_size=batch)) == expected
        # Two streams (keys, items): linear means a small multiple of one
        # listing, whatever the number of pages (the old code: about
        # pages / 2 times as much, 15x with 30 pages).
        assert sqlite_steps[0] <= 6 * whole + 20, (batch, sqlite_steps[0], whole)
