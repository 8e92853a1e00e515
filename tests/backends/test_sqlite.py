"""SQLite-specific guarantees: files, schema, processes, query plans.

The contract is docs/semantics.md; the SQLite decisions are in docs/design.md.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.backends.sqlite import SCHEMA_VERSION


def journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_new_file_uses_wal_and_records_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with keyshelf.open(path) as kv:
        kv.set("k", 1)
    assert journal_mode(path) == "wal"
    conn = sqlite3.connect(path)
    row = conn.execute("SELECT value FROM keyshelf_meta WHERE name='schema_version'").fetchone()
    conn.close()
    assert row == (str(SCHEMA_VERSION),)


def test_shares_an_application_database(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('Alice'), ('Bob')")
    conn.commit()
    conn.close()
    assert journal_mode(path) == "delete"
    with keyshelf.open(path) as kv:
        kv.set("user:cache", {"name": "Alice"})
        kv.clear()
        kv.set("k", 1)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT id, name FROM users ORDER BY id").fetchall() == [
        (1, "Alice"),
        (2, "Bob"),
    ]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"users", "keyshelf", "keyshelf_meta"}
    # keyshelf does not change an existing file's journal mode unless asked.
    assert journal_mode(path) == "delete"


def test_journal_mode_option(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    with keyshelf.open(path, journal_mode="wal") as kv:
        kv.set("k", 1)
    assert journal_mode(path) == "wal"


def corrupt_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["random"] = tmp_path / "random.db"
    files["random"].write_bytes(os.urandom(4096))
    files["text"] = tmp_path / "notes.txt"
    files["text"].write_text("just some text, not a database\n" * 50)
    good = tmp_path / "good.db"
    with keyshelf.open(good) as kv:
        kv.mset({f"k{i}": "x" * 200 for i in range(200)})
    data = good.read_bytes()
    files["truncated"] = tmp_path / "truncated.db"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["header-only"] = tmp_path / "header.db"
    files["header-only"].write_bytes(data[:100])
    return files


def test_switching_to_wal_does_not_wait_in_a_deadlock(tmp_path: Path) -> None:
    # The switch to WAL holds a shared lock and wants an exclusive one, while
    # a writer of the rollback-journal file holds its reserved lock and then
    # commits, for which it needs every shared lock gone. SQLite refuses the
    # switch at once ("database is locked": the previous code failed the open
    # here; processes opening a fresh file together hit the same): the open
    # must let go of its lock, wait for the writer and try again.
    path = tmp_path / "rollback.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("CREATE TABLE other (x)")
    setup.close()
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=20)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    committed = threading.Event()

    def commit_soon() -> None:
        threading.Event().wait(0.3)  # the open below is waiting by then
        writer.execute("COMMIT")
        committed.set()

    thread = threading.Thread(target=commit_soon)
    thread.start()
    try:
        with keyshelf.open(f"sqlite:///{path}", journal_mode="WAL", timeout=8) as kv:
            kv.set("k", 1)
            assert kv.get("k") == 1
    finally:
        thread.join()
        writer.close()
    assert committed.is_set()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert check.execute("SELECT count(*) FROM other").fetchone()[0] == 1
    finally:
        check.close()


@pytest.mark.parametrize("kind", ["random", "text", "truncated", "header-only"])
def test_foreign_and_corrupt_files_refused_unchanged(tmp_path: Path, kind: str) -> None:
    path = corrupt_files(tmp_path)[kind]
    before = path.read_bytes()
    with pytest.raises(keyshelf.BackendError) as info, keyshelf.open(path) as kv:
        # A truncated file may only fail once a damaged page is read.
        kv.keys()
        kv.size()
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


def test_newer_schema_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with keyshelf.open(path) as kv:
        kv.set("k", 1)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE keyshelf_meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(keyshelf.IncompatibleStoreError, match="schema version 99"):
        keyshelf.open(path)
    with pytest.raises(keyshelf.IncompatibleStoreError):
        keyshelf.open_async(path)
    assert path.read_bytes() == before


def test_directory_and_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(keyshelf.BackendError, match="is a directory"):
        keyshelf.open(tmp_path)
    with pytest.raises(keyshelf.BackendError, match="does not exist"):
        keyshelf.open(tmp_path / "no" / "such" / "dir.db")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    with keyshelf.open(path) as kv:
        kv.set("k", 1)
    path.chmod(stat.S_IRUSR)
    with pytest.raises(keyshelf.BackendError):
        keyshelf.open(path).set("k", 2)


def test_prefix_patterns_use_the_primary_key_range(tmp_path: Path) -> None:
    with keyshelf.open(tmp_path / "plan.db") as kv:
        backend: Any = kv.backend
        bound, params = backend._range(kv._matcher("user:1*"))
        conn = sqlite3.connect(tmp_path / "plan.db")
        plan = conn.execute(
            f"EXPLAIN QUERY PLAN SELECT key FROM keyshelf WHERE ns = ? AND {bound}",
            ("default", *params),
        ).fetchall()
        conn.close()
        detail = " ".join(str(row[-1]) for row in plan)
        assert "SEARCH" in detail and "PRIMARY KEY" in detail and "key>" in detail


def test_one_connection_per_thread_reused(tmp_path: Path) -> None:
    with keyshelf.open(tmp_path / "c.db") as kv:
        for _ in range(50):
            kv.set("k", 1)
            kv.get("k")
        backend: Any = kv.backend
        assert len(backend._connections) == 1


def test_threads_incrementing_lose_nothing(tmp_path: Path) -> None:
    with keyshelf.open(tmp_path / "t.db") as kv:

        def work() -> None:
            for _ in range(300):
                kv.increment("counter")

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert kv.get("counter") == 2400


def _increment_many(path: str, count: int) -> None:
    with keyshelf.open(path) as kv:
        for _ in range(count):
            kv.increment("counter")


def _race_setnx(path: str, who: int, barrier: Any, results: Any) -> None:
    with keyshelf.open(path) as kv:
        barrier.wait()
        results.put((who, kv.setnx("lock", who, ttl=30)))


def test_processes_incrementing_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "p.db")
    keyshelf.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_increment_many, args=(path, 2000)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    with keyshelf.open(path) as kv:
        assert kv.get("counter") == 8000


def test_processes_racing_setnx_have_one_winner(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    keyshelf.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    workers = [ctx.Process(target=_race_setnx, args=(path, i, barrier, results)) for i in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    winners = [who for who, won in outcomes if won]
    assert len(winners) == 1
    with keyshelf.open(path) as kv:
        assert kv.get("lock") == winners[0]
