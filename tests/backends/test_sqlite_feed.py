"""The SQLite change feed: what the conformance suite cannot see.

A multi-key commit shares one revision and the next write's revision follows
its last change's ``seq``; a commit larger than the history (pruning runs
inside it, on its own changes) keeps the prune mark at its revision, so a
reader that has the whole commit is not told it was pruned.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import keyshelf
from keyshelf.errors import ChangesCompactedError


def _changes(kv: keyshelf.Store, after: int = 0) -> list[tuple[int, str, str]]:
    backend = kv.backend
    return [(c.revision, c.type, c.key) for c in backend.changes(None, after, 10_000, 0)]


def test_a_commit_shares_one_revision(tmp_path: Path) -> None:
    with keyshelf.open(f"sqlite:///{tmp_path / 'a.db'}", history=100) as kv:
        kv.set("before", 0)
        assert kv.atomic().set("x", 1).set("y", 2).delete("before").commit().ok
        kv.set("after", 3)
        got = _changes(kv)
        assert got[0] == (1, "set", "before") and got[-1] == (5, "set", "after")
        assert sorted(got[1:4]) == [(2, "delete", "before"), (2, "set", "x"), (2, "set", "y")]
        assert not kv.atomic().check("x", 9).set("x", 0).commit().ok  # refused: nothing
        assert kv.revision() == 5


def test_a_commit_larger_than_the_history_keeps_the_mark_at_its_revision(
    tmp_path: Path,
) -> None:
    with keyshelf.open(f"sqlite:///{tmp_path / 'a.db'}", history=10) as kv:
        kv.set("first", 0)
        commit = kv.atomic()
        for i in range(300):  # pruning runs inside the commit, on its own changes
            commit.set(f"k{i}", i)
        assert commit.commit().ok
        revision = kv.revision()
        assert revision == 2
        assert kv.backend.changes(None, revision, 10, 0) == []  # it has the whole commit
        with pytest.raises(ChangesCompactedError) as caught:
            kv.backend.changes(None, revision - 1, 10, 0)
        assert caught.value.oldest == revision + 1
        kv.set("next", 1)
        assert _changes(kv, revision) == [(302, "set", "next")]
