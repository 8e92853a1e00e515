"""The SQLite change feed: what the conformance suite cannot see.

A multi-key commit shares one revision and the next write's revision follows
its last change's ``seq``; a commit larger than the history (pruning runs
inside it, on its own changes) keeps the prune mark at its revision, so a
reader that has the whole commit is not told it was pruned. A commit and a
purge decide whether the feed is on inside their write transaction, so a
process that switches the feed on just before cannot make them record
separate revisions or "delete" instead of "expire".
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.backends import _sqlite_feed
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


def _switch_on_at_the_decision(
    monkeypatch: pytest.MonkeyPatch, kv: keyshelf.Store, url: str
) -> Callable[[], bool]:
    """Make another store switch the feed on at ``kv``'s next decision about it.

    At the first of: just after ``kv`` decided whether the feed is on
    (``_feed_on`` returned, or ``_feed_off_at``: the feed known off from an
    earlier transaction), or just before ``kv`` begins a write transaction.
    Code that decides before its transaction (the race) then acts on a stale
    "off"; code that decides inside it sees the feed on. Returns whether the
    switch happened.
    """
    backend: Any = kv.backend
    done = [False]

    def switch_on() -> None:
        if not done[0]:
            done[0] = True
            with keyshelf.open(url, history=100):  # another connection, as another process
                pass

    decide = backend._feed_on
    known_off = backend._feed_off_at
    begin = backend._transaction

    def feed_on(conn: Any) -> bool:
        on: bool = decide(conn)
        switch_on()
        return on

    def feed_off_at() -> int | None:
        off_at: int | None = known_off()
        switch_on()
        return off_at

    @contextlib.contextmanager
    def transaction(conn: Any) -> Iterator[None]:
        switch_on()
        with begin(conn):
            yield

    monkeypatch.setattr(backend, "_feed_on", feed_on)
    monkeypatch.setattr(backend, "_feed_off_at", feed_off_at)
    monkeypatch.setattr(backend, "_transaction", transaction)
    return lambda: done[0]


def test_a_commit_racing_the_switch_on_shares_one_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with keyshelf.open(url) as kv:
        assert kv.atomic().set("x", 0).set("y", 0).commit().ok  # feed off: "off" is cached
        assert kv.atomic().set("x", 0).set("y", 0).commit().ok  # the known-off path
        switched = _switch_on_at_the_decision(monkeypatch, kv, url)
        assert kv.atomic().set("x", 1).set("y", 2).commit().ok
        assert switched()
        assert sorted(_changes(kv)) == [(1, "set", "x"), (1, "set", "y")]
        kv.set("z", 3)
        assert _changes(kv, 1) == [(3, "set", "z")]
        assert kv.dump() == {"x": 1, "y": 2, "z": 3}


def test_a_refused_commit_while_the_feed_is_known_off_stays_refused(tmp_path: Path) -> None:
    """The known-off path tells a refusal by its checks from a changed schema."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with keyshelf.open(url) as kv:
        assert kv.atomic().set("x", 0).set("y", 0).commit().ok  # feed off: "off" is cached
        assert not kv.atomic().check("x", 9).set("x", 1).set("y", 1).commit().ok
        with keyshelf.open(url, history=100):
            pass
        assert not kv.atomic().check("x", 9).set("x", 1).set("y", 1).commit().ok
        assert kv.dump() == {"x": 0, "y": 0} and kv.revision() == 0
        assert kv.atomic().check("x", 1).set("x", 2).set("y", 2).commit().ok
        assert sorted(_changes(kv)) == [(1, "set", "x"), (1, "set", "y")]


def test_a_purge_racing_the_switch_on_records_expire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with keyshelf.open(url) as kv:
        kv.set("kept", 2)
        assert kv.delete_expired() == 0  # feed off: "off" is cached
        kv.set("gone", 1, ttl=timedelta(milliseconds=1))
        time.sleep(0.05)  # "gone" is expired
        switched = _switch_on_at_the_decision(monkeypatch, kv, url)
        assert kv.delete_expired() == 1
        assert switched()
        assert _changes(kv) == [(1, "expire", "gone")]
        assert kv.dump() == {"kept": 2}


# -- shape 1 (keyshelf before the current triggers): recognised and upgraded -------

T = "keyshelf"


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _triggers(path: Path) -> dict[str, str]:
    with contextlib.closing(_raw(path)) as raw:
        rows = raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        return dict(rows.fetchall())


def _to_shape_1(path: Path) -> None:
    """Replace the feed's triggers by shape 1's, as keyshelf before them created them."""
    with contextlib.closing(_raw(path)) as raw:
        raw.execute("BEGIN IMMEDIATE")
        for name in [*_sqlite_feed.trigger_sql(T), _sqlite_feed.prune_trigger_sql(T)[0]]:
            raw.execute(f"DROP TRIGGER {name}")
        for sql in _sqlite_feed._v1_trigger_sql(T).values():
            raw.execute(sql)
        raw.execute(_sqlite_feed._v1_prune_trigger_sql(T)[1])
        raw.execute("COMMIT")


def _shape_1_commit(path: Path, rows: dict[str, int]) -> None:
    """A multi-key commit as keyshelf of shape 1 wrote it: under the ``grouping`` marker."""
    f, c = _sqlite_feed.feed_table(T), _sqlite_feed.changes_table(T)
    with contextlib.closing(_raw(path)) as raw:
        (ns,) = raw.execute(f"SELECT ns FROM {T} LIMIT 1").fetchone()  # the store's view
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(f"UPDATE {f} SET grouping = (SELECT coalesce(max(seq), 0) + 1 FROM {c})")
        for key, value in rows.items():
            raw.execute(
                f"INSERT INTO {T} VALUES (?, ?, 'i', ?, NULL, NULL, 1, 1, 1) "
                "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, "
                "version = version + 1",
                (ns, key, value),
            )
        raw.execute(f"UPDATE {f} SET grouping = 0")
        raw.execute("COMMIT")


def _recorded(path: Path) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    f, c = _sqlite_feed.feed_table(T), _sqlite_feed.changes_table(T)
    with contextlib.closing(_raw(path)) as raw:
        rows = raw.execute(f"SELECT * FROM {c} ORDER BY seq").fetchall()
        return rows, raw.execute(f"SELECT * FROM {f}").fetchone()


def _shape_1_store(path: Path, history: int) -> keyshelf.Store:
    """A store written through shape 1's triggers (the handle stays open: no upgrade)."""
    kv = keyshelf.open(f"sqlite:///{path}", history=history)
    _to_shape_1(path)
    assert set(_triggers(path)) == {*_sqlite_feed._v1_trigger_sql(T), f"{T}_changes_prune"}
    kv.set("a", 1)
    kv.set("b", 2, ttl=timedelta(hours=1))
    kv.delete("a")
    _shape_1_commit(path, {"x": 7, "y": 8})
    # This keyshelf's commit on shape 1's triggers shares its revision too.
    assert kv.atomic().set("c", 3).set("x", 9).commit().ok
    return kv


def test_a_store_of_shape_1_is_upgraded_at_open_and_keeps_every_change(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with _shape_1_store(path, history=1000) as kv:
        before, settings = _recorded(path)
        assert [(c.revision, c.type, c.key) for c in kv.backend.changes(None, 0, 100, 0)] == [
            (1, "set", "a"), (2, "set", "b"), (3, "delete", "a"),
            (4, "set", "x"), (4, "set", "y"), (6, "set", "c"), (6, "set", "x"),
        ]  # fmt: skip
    with keyshelf.open(f"sqlite:///{path}", readonly=True) as ro:  # reads it as it is
        assert ro.revision() == 6
    assert f"{T}_changes_prune" in _triggers(path)
    with keyshelf.open(f"sqlite:///{path}") as kv:  # any writable open upgrades
        current = {**_sqlite_feed.trigger_sql(T)}
        current[_sqlite_feed.prune_trigger_sql(T)[0]] = _sqlite_feed.prune_trigger_sql(T)[1]
        assert _triggers(path) == current
        assert _recorded(path) == (before, settings)  # nothing recorded is lost
        assert kv.revision() == 6
        kv.set("d", 4)
        assert kv.atomic().set("e", 5).delete("c").commit().ok
        got = [(c.revision, c.type, c.key) for c in kv.backend.changes(None, 6, 100, 0)]
        assert sorted(got) == [(8, "set", "d"), (9, "delete", "c"), (9, "set", "e")]
        replay: dict[str, Any] = {}
        count = len(kv.backend.changes(None, 0, 100, 0))
        with kv.watch(since=0) as changes:
            for n, change in enumerate(changes, 1):
                if change.type == "set":
                    replay[change.key] = change.value
                else:
                    replay.pop(change.key)
                if n == count:
                    break
        assert replay == kv.dump() == {"b": 2, "x": 9, "y": 8, "d": 4, "e": 5}


def test_an_upgraded_store_prunes_within_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with _shape_1_store(path, history=10):
        pass
    c = _sqlite_feed.changes_table(T)
    with keyshelf.open(f"sqlite:///{path}", history=10) as kv:
        assert f"{T}_changes_prune" not in _triggers(path)
        for i in range(1000):
            kv.set(f"k{i % 30}", i) if i % 3 else kv.delete(f"k{(i + 1) % 30}")
            if i % 50 == 0:
                with contextlib.closing(_raw(path)) as raw:
                    kept = raw.execute(f"SELECT count(*) FROM {c}").fetchone()[0]
                assert kept <= 10 + _sqlite_feed.PRUNE_EVERY
        with pytest.raises(ChangesCompactedError) as caught:
            kv.backend.changes(None, 0, 10, 0)
        newest = kv.revision()
        assert caught.value.oldest > newest - 10 - _sqlite_feed.PRUNE_EVERY
        assert [c.revision for c in kv.backend.changes(None, newest - 10, 100, 0)] == list(
            range(newest - 9, newest + 1)
        )
