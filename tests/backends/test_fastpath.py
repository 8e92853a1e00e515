"""The async fast path (issue 19): what runs inline, what goes to the thread, what is left.

The conformance suite checks that the async API means the same as the sync
one on every backend; these tests check the fast path's own promises on the
local backends (src/keyshelf/backends/_sqlite_fast.py, _file_fast.py,
_bridge.py): a call that finds SQLite locked goes to the worker thread while
the loop keeps running and leaves nothing open on the loop's connection; a
COMMIT that fails leaves nothing half-done; batches go where their size says;
inline calls let other tasks run; one store serves several event loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.backends import _bridge, _sqlite_fast
from keyshelf.backends._base_async import AsyncBackend
from keyshelf.backends.sqlite import SQLiteBackend
from keyshelf.errors import BackendError


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding SQLite's write lock (BEGIN IMMEDIATE) until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE IF NOT EXISTS other (x)")
        conn.execute("INSERT INTO other VALUES (1)")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def count_hand_overs(kv: keyshelf.AsyncStore) -> list[int]:
    """A one-item list that counts the calls the store's bridge hands to a worker thread."""
    bridge = kv._backend
    handed = [0]
    real = bridge._in_thread

    async def counting(fn: Any, args: Any, kwargs: Any) -> Any:
        handed[0] += 1
        return await real(fn, args, kwargs)

    bridge._in_thread = counting
    return handed


def test_hot_primitives_take_exactly_the_arguments_the_bridge_passes() -> None:
    for name, arity in _bridge._POSITIONAL.items():
        params = list(inspect.signature(getattr(AsyncBackend, name)).parameters.values())[1:]
        assert len(params) == arity, name
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params)


async def test_a_locked_write_waits_in_the_thread_while_the_loop_runs(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with keyshelf.open_async(f"sqlite:///{path}") as kv:
        await kv.set("seen", "before")
        backend = kv._backend.backend
        handed = count_hand_overs(kv)
        with write_lock(path):
            writes = [
                asyncio.create_task(kv.set("k", 1)),
                asyncio.create_task(kv.increment("missing")),  # a BEGIN IMMEDIATE transaction
                asyncio.create_task(kv.increment("seen-count")),  # the one-statement UPDATE path
            ]
            # The loop runs: inline reads complete while the lock is held (WAL),
            # and the lock is held until every write has given up its inline
            # retries and waits in a worker thread.
            while handed[0] < 3:
                assert await kv.get("seen") == "before"
                await asyncio.sleep(0.001)
            assert not any(task.done() for task in writes)
            # The failed inline attempts left the loop's connection clean.
            assert getattr(backend._local, "nowait", False)
            assert not backend._local.conn.in_transaction
        assert [await task for task in writes] == [True, 1, 1]
        assert await kv.get_many(["k", "missing", "seen-count"]) == {
            "k": 1,
            "missing": 1,
            "seen-count": 1,
        }


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_busy_commit_leaves_nothing_half_done(tmp_path: Path, api: str) -> None:
    # Rollback-journal mode: COMMIT needs every reader gone. A reader holding
    # its lock makes the COMMIT of a transaction fail with SQLITE_BUSY after
    # the (short) timeout; the transaction must be rolled back, not left open
    # on the connection to be committed, or read, by a later call.
    path = tmp_path / "j.db"
    url = f"sqlite:///{path}?journal_mode=DELETE&timeout=0.02"
    reader = sqlite3.connect(path, isolation_level=None)

    def hold_read_lock() -> None:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM keyshelf").fetchone()

    try:
        if api == "sync":
            with keyshelf.open(url) as kv:
                kv.set("n", 10)
                hold_read_lock()
                with pytest.raises(BackendError, match="locked"):
                    kv.append("fresh", "x")  # update(): BEGIN IMMEDIATE ... COMMIT
                assert not kv._backend._local.conn.in_transaction
                reader.execute("ROLLBACK")
                assert kv.get("fresh") is None
                assert kv.append("fresh", "y") == "y"
                assert kv.get_many(["n", "fresh"]) == {"n": 10, "fresh": "y"}
        else:

            async def main() -> None:
                async with keyshelf.open_async(url) as kv:
                    await kv.set("n", 10)
                    hold_read_lock()
                    with pytest.raises(BackendError, match="locked"):
                        await kv.append("fresh", "x")  # in the worker thread
                    reader.execute("ROLLBACK")
                    assert await kv.get("fresh") is None
                    assert await kv.append("fresh", "y") == "y"
                    assert await kv.get_many(["n", "fresh"]) == {"n": 10, "fresh": "y"}

            asyncio.run(main())
    finally:
        reader.close()
    # What another connection sees: the failed call wrote nothing.
    with keyshelf.open(f"sqlite:///{path}") as kv:
        assert kv.get("fresh") == "y"


async def test_writes_run_inline_only_without_fsync_per_commit(tmp_path: Path) -> None:
    for query, inline in (("", True), ("?durable=true", False), ("?journal_mode=DELETE", False)):
        kv = keyshelf.open_async(f"sqlite:///{tmp_path / 'w.db'}{query}")
        async with kv:
            assert _sqlite_fast.writes_inline(kv._backend.backend) is inline, query


async def test_batches_run_inline_up_to_the_documented_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where: dict[str, list[int]] = {"get_many": [], "purge_expired": []}
    for name in where:
        original = getattr(SQLiteBackend, name)

        def recording(self: Any, *args: Any, _name: str = name, _fn: Any = original) -> Any:
            where[_name].append(threading.get_ident())
            return _fn(self, *args)

        monkeypatch.setattr(SQLiteBackend, name, recording)
    loop_thread = threading.get_ident()
    async with keyshelf.open_async(f"sqlite:///{tmp_path / 'b.db'}") as kv:
        small = [f"k{i}" for i in range(_sqlite_fast.INLINE_BATCH)]
        big = [*small, "one-more"]
        await kv.get_many(small)
        await kv.get_many(big)
        await kv.delete_expired()
    assert where["get_many"][0] == loop_thread
    assert where["get_many"][1] != loop_thread
    assert where["purge_expired"] and where["purge_expired"][0] != loop_thread


@pytest.mark.parametrize("scheme", ["memory", "sqlite", "file"])
async def test_a_task_calling_inline_primitives_lets_other_tasks_run(
    tmp_path: Path, scheme: str
) -> None:
    url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path / 'y.db'}",
        "file": f"file://{tmp_path / 'y.json'}",
    }[scheme]
    async with keyshelf.open_async(url) as kv:
        await kv.set("k", 1)
        for _ in range(20):  # inline calls: the store's first slice has begun
            await kv.get("k")
        other_ran = asyncio.Event()

        async def spinner() -> int:
            # Nothing here awaits but the store: without the bridge's turns,
            # the other task could not run until this one ends.
            for n in range(200_000):
                if other_ran.is_set():
                    return n
                await kv.get("k")
            raise AssertionError("the other task never ran")

        async def other() -> None:
            other_ran.set()

        spin = asyncio.create_task(spinner())
        await asyncio.sleep(0)  # the spinner starts first
        await other()
        assert await spin < 200_000


def test_one_store_serves_several_event_loops(tmp_path: Path) -> None:
    kv = keyshelf.open_async(f"sqlite:///{tmp_path / 'm.db'}")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def in_its_own_loop() -> None:
        async def work() -> None:
            barrier.wait()
            for _ in range(300):
                await kv.increment("n")

        try:
            asyncio.run(work())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=in_its_own_loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    backend = kv._backend.backend

    async def finish() -> Any:
        try:
            return await kv.get("n")
        finally:
            await kv.aclose()

    assert asyncio.run(finish()) == 600
    assert backend._closed


async def test_file_reads_see_other_writers(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'f.json'}"
    async with keyshelf.open_async(url) as kv:
        await kv.set("k", "mine")
        assert await kv.get("k") == "mine"
        with keyshelf.open(url) as other:
            other.set("k", "theirs")
        # The file changed: the read reloads it (in the worker thread).
        assert await kv.get("k") == "theirs"
        assert await kv.get_many(["k"]) == {"k": "theirs"}


async def test_inline_writes_leave_checkpoints_to_the_worker_threads(tmp_path: Path) -> None:
    # The loop's connection never checkpoints (wal_autocheckpoint=0: a
    # checkpoint fsyncs); every CHECKPOINT_EVERY-th write goes to a worker
    # thread, whose connection checkpoints when the WAL is due. Without that,
    # a store written only through the async API would grow its WAL forever.
    path = tmp_path / "c.db"
    async with keyshelf.open_async(f"sqlite:///{path}") as kv:
        for i in range(6000):
            await kv.set(f"k{i % 2000}", i)
        backend = kv._backend.backend
        conn = backend._local.conn
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        # os.stat only: the WAL is never opened outside SQLite.
        wal_pages = os.stat(f"{path}-wal").st_size / 4096
    # SQLite's autocheckpoint is 1,000 pages; the hand-over adds at most the
    # pages of CHECKPOINT_EVERY writes (a few each).
    assert wal_pages < 1000 + 8 * _sqlite_fast.CHECKPOINT_EVERY


async def test_memory_get_runs_without_a_backend_coroutine_and_refuses_once_closed() -> None:
    kv = keyshelf.open_async("memory://")
    await kv.set("k", "v")
    bridge = kv._backend
    assert bridge.get_now is not None
    awaited = 0
    real = bridge.get

    async def counting(*args: Any) -> Any:
        nonlocal awaited
        awaited += 1
        return await real(*args)

    bridge.get = counting
    for _ in range(1000):
        assert await kv.get("k") == "v"
    # The backend's coroutine is awaited only when the loop is due a turn
    # (a clock check every 16th call), not on every call.
    assert awaited < 1000 // 16 + 1
    await kv.aclose()
    for _ in range(32):  # every call, not only those that read the clock
        with pytest.raises(keyshelf.StoreClosedError):
            await kv.get("k")


async def test_a_write_that_finds_a_short_lock_retries_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Retries enough for any scheduling hiccup: the lock below is released
    # as soon as every write has failed once, and only then do they succeed.
    monkeypatch.setattr(_bridge, "BUSY_RETRIES", (0.001,) * 2000)
    path = tmp_path / "r.db"
    async with keyshelf.open_async(f"sqlite:///{path}") as kv:
        await kv.set("n", 1)
        handed = count_hand_overs(kv)
        bridge = kv._backend
        busy = [0]
        real = bridge._retry

        async def counting(*args: Any) -> Any:
            busy[0] += 1
            return await real(*args)

        bridge._retry = counting
        with write_lock(path):
            writes = [
                asyncio.create_task(kv.set("k", 1)),
                asyncio.create_task(kv.increment("n")),
                asyncio.create_task(kv.increment("new")),
            ]
            while busy[0] < 3:  # every write found the lock taken
                await asyncio.sleep(0)
            assert not any(task.done() for task in writes)
        assert [await task for task in writes] == [True, 2, 1]
        assert handed[0] == 0  # every write ran on the loop's thread


async def test_a_slice_after_an_overrun_is_shorter_by_the_overrun() -> None:
    # The next slice ends one SLICE after the last one should have ended
    # (the tasks that waited ran past it: an iteration then holds about one
    # slice of inline work in all); an overrun of a whole slice leaves none;
    # a loop that was away 10 ms or more (not this store's turns) gets a
    # whole slice, as does the first turn.
    from keyshelf.backends._fastpath import SLICE

    async with keyshelf.open_async("memory://") as kv:
        bridge = kv._backend
        ended = _bridge._clock() - SLICE / 4
        bridge._turn_ends = ended
        bridge._new_turn()
        assert bridge._turn_ends == pytest.approx(ended + SLICE, abs=1e-9)

        bridge._turn_ends = _bridge._clock() - 2 * SLICE
        before = _bridge._clock()
        bridge._new_turn()
        assert before <= bridge._turn_ends <= _bridge._clock()

        for away in (0.02, float("inf")):
            bridge._turn_ends = _bridge._clock() - away
            before = _bridge._clock()
            bridge._new_turn()
            assert before + SLICE <= bridge._turn_ends <= _bridge._clock() + SLICE
