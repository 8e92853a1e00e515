"""``open(url, create=False)`` and ``open(url, readonly=True)`` on SQLite and the file backend.

* ``create=False``: the file must exist and hold a keyshelf store; otherwise
  StoreNotFoundError, and nothing is created or written (no database file, no
  ``-wal``/``-shm``, no lock file, no schema in an application's database).
* ``readonly=True`` (both backends): nothing is ever created or written;
  every write raises ReadOnlyStoreError and changes nothing (even a write that
  would have changed nothing, such as deleting a missing key); reads work,
  also while another process is writing.

Both options also come as URL query strings (``?create=false``) and go
through the same parsing as every other bool option. Every test runs through
the sync and the async API.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import multiprocessing
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import keyshelf

APIS = ["sync", "async"]
WAIT = 120


class Opened:
    """A store opened through either API, with its calls made synchronous."""

    def __init__(self, url: str | Path, api: str, **options: Any) -> None:
        self.api = api
        self.loop: asyncio.AbstractEventLoop | None = None
        if api == "sync":
            self.store: Any = keyshelf.open(url, **options)
        else:
            self.loop = asyncio.new_event_loop()
            self.store = self.loop.run_until_complete(self._open_async(url, options))

    @staticmethod
    async def _open_async(url: str | Path, options: dict[str, Any]) -> Any:
        return keyshelf.open_async(url, **options)

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.store, method)(*args, **kwargs)
        if self.loop is not None:
            return self.loop.run_until_complete(result)
        return result

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.store.aclose())
            self.loop.close()
        else:
            self.store.close()


def attempt(url: str | Path, api: str, **options: Any) -> None:
    """Open and close a store (raises what open raises)."""
    Opened(url, api, **options).close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_url(path: Path) -> str:
    return str(path)


def file_url(path: Path) -> str:
    return f"file://{path}"


BACKENDS: dict[str, tuple[str, Callable[[Path], str]]] = {
    "sqlite": ("store.db", sqlite_url),
    "file": ("store.json", file_url),
}


# -- create=False -------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("how", ["option", "query", "string", "readonly"])
def test_a_missing_file_is_not_created(tmp_path: Path, backend: str, api: str, how: str) -> None:
    name, url_of = BACKENDS[backend]
    path = tmp_path / name
    url = url_of(path)
    options: dict[str, Any] = {}
    if how == "option":
        options["create"] = False
    elif how == "string":
        options["create"] = "false"
    elif how == "readonly":
        options["readonly"] = True
    else:
        url = (f"sqlite:///{path}" if backend == "sqlite" else url) + "?create=false"
    with pytest.raises(keyshelf.StoreNotFoundError) as info:
        attempt(url, api, **options)
    assert str(path) in str(info.value)
    assert "nothing was created" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("readonly", [False, True])
def test_an_sqlite_file_without_a_store_is_not_written(
    tmp_path: Path, api: str, readonly: bool
) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('Alice')")
    conn.commit()
    conn.close()
    before = digest(path)
    options = {"readonly": True} if readonly else {"create": False}
    with pytest.raises(keyshelf.StoreNotFoundError, match="has no keyshelf store"):
        attempt(path, api, **options)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


@pytest.mark.parametrize("api", APIS)
def test_an_empty_file_is_not_a_store_for_sqlite(tmp_path: Path, api: str) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(keyshelf.StoreNotFoundError):
        attempt(path, api, create=False)
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_an_existing_store_opens_with_create_false(tmp_path: Path, backend: str, api: str) -> None:
    name, url_of = BACKENDS[backend]
    url = url_of(tmp_path / name)
    with keyshelf.open(url) as kv:
        kv.set("k", 1)
    store = Opened(url, api, create=False)
    try:
        assert store("get", "k") == 1
        assert store("set", "k", 2) is True
        assert store("get", "k") == 2
    finally:
        store.close()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("option", ["create", "readonly"])
def test_bad_option_values_are_refused(tmp_path: Path, backend: str, option: str) -> None:
    name, url_of = BACKENDS[backend]
    with pytest.raises(keyshelf.InvalidURLError, match=option):
        keyshelf.open(url_of(tmp_path / name), **{option: "maybe"})
    assert list(tmp_path.iterdir()) == []


def test_readonly_refuses_a_journal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    keyshelf.open(path).close()
    with pytest.raises(keyshelf.InvalidURLError, match="journal_mode"):
        keyshelf.open(path, readonly=True, journal_mode="delete")


# -- readonly=True ------------------------------------------------------------------------

# Every write of the store API, with arguments; each must raise ReadOnlyStoreError,
# also when it would change nothing (a missing key, a failed condition, no match).
WRITES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("set", ("k", 2), {}),
    ("set", ("k", 1), {"nx": True}),
    ("set", ("missing", 1), {"xx": True}),
    ("setnx", ("k", 1), {}),
    ("delete", ("k",), {}),
    ("delete", ("missing",), {}),
    ("delete", ("k", "n"), {}),
    ("delete_many", (["missing"],), {}),
    ("mset", ({"a": 1, "b": 2},), {}),
    ("set_many", ({"a": 1},), {}),
    ("increment", ("n",), {}),
    ("decrement", ("n", 5), {}),
    ("increment", ("k", 2**62), {}),
    ("append", ("s", "tail"), {}),
    ("compare_and_swap", ("k", "not the value", 3), {}),
    ("set_metadata", ("k", {"m": 1}), {}),
    ("expire", ("k", 60), {}),
    ("expire", ("missing", 60), {}),
    ("persist", ("t",), {}),
    ("delete_pattern", ("*",), {}),
    ("delete_pattern", ("nothing-matches-*",), {}),
    ("delete_expired", (), {}),
    ("cleanup_expired", (), {}),
    ("clear", (), {}),
    ("clear_namespace", ("other",), {}),
]


def _fill(url: str) -> None:
    with keyshelf.open(url) as kv:
        kv.mset({"k": 1, "n": 10, "s": "text"})
        kv.set("t", "x", ttl=3600)
        kv.set("m", 1, metadata={"a": 1})


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_readonly_refuses_every_write_and_changes_nothing(
    tmp_path: Path, backend: str, api: str
) -> None:
    name, url_of = BACKENDS[backend]
    path = tmp_path / name
    url = url_of(path)
    _fill(url)
    with keyshelf.open(url) as kv:
        expected = kv.dump()
    before = digest(path)
    listing = sorted(p.name for p in tmp_path.iterdir())
    store = Opened(url, api, readonly=True)
    try:
        assert store("get", "k") == 1
        assert store("get_metadata", "m") == {"a": 1}
        assert 3599 < store("ttl", "t") <= 3600
        assert store("dump") == expected
        assert store("key_count") == 5
        for method, args, kwargs in WRITES:
            with pytest.raises(keyshelf.ReadOnlyStoreError) as info:
                store(method, *args, **kwargs)
            assert "readonly=True" in str(info.value), method
            assert str(path) in str(info.value)
        export = io.BytesIO()
        store("export", export)
        with pytest.raises(keyshelf.ReadOnlyStoreError):
            store("import_", io.BytesIO(export.getvalue()))
        assert store("dump") == expected
    finally:
        store.close()
    assert digest(path) == before
    if backend == "file":  # not even a lock file
        assert sorted(p.name for p in tmp_path.iterdir()) == listing
    with keyshelf.open(url) as kv:
        assert kv.dump() == expected


def test_readonly_works_where_nothing_can_be_written(tmp_path: Path) -> None:
    # An application's database in rollback-journal mode keeps its journal mode.
    path = tmp_path / "app.db"
    with keyshelf.open(path, journal_mode="delete") as kv:
        kv.set("k", 1)
    before = digest(path)
    with keyshelf.open(f"sqlite:///{path}?readonly=true") as kv:
        assert kv.get("k") == 1
        with pytest.raises(keyshelf.ReadOnlyStoreError):
            kv.set("k", 2)
    assert digest(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()


def test_a_special_path_name_is_quoted_for_sqlite(tmp_path: Path) -> None:
    # '?', '#', '%' and spaces are special in SQLite's file: URIs.
    directory = tmp_path / "dir ?mode=rwc#x%20y"
    directory.mkdir()
    path = directory / "st?re%3F #1.db"
    with keyshelf.open(path) as kv:
        kv.set("k", 1)
    assert sorted(p.name for p in directory.iterdir())[0] == path.name
    for options in ({"create": False}, {"readonly": True}):
        with keyshelf.open(path, **options) as kv:
            assert kv.get("k") == 1
    assert not (tmp_path / "dir ").exists()


# -- reads while another process writes ----------------------------------------------------


def _writer(url: str, holding: Any, release: Any, done: Any) -> None:
    """Hold a write transaction open (SQLite) or write a new version (file)."""
    if url.startswith("file://"):
        with keyshelf.open(url) as kv:
            holding.set()
            if not release.wait(WAIT):
                raise TimeoutError
            kv.set("k", "new")
        done.set()
        return
    conn = sqlite3.connect(url, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE keyshelf SET value = 'new' WHERE key = 'k'")
    holding.set()
    if not release.wait(WAIT):
        raise TimeoutError
    conn.execute("COMMIT")
    conn.close()
    done.set()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_readonly_reads_while_another_process_writes(
    tmp_path: Path, backend: str, api: str
) -> None:
    name, url_of = BACKENDS[backend]
    path = tmp_path / name
    url = url_of(path)
    with keyshelf.open(url) as kv:
        kv.set("k", "old")
    ctx = multiprocessing.get_context("spawn")
    holding, release, done = ctx.Event(), ctx.Event(), ctx.Event()
    writer_url = url if backend == "file" else str(path)
    writer = ctx.Process(target=_writer, args=(writer_url, holding, release, done))
    writer.start()
    store = Opened(url, api, readonly=True)
    try:
        assert holding.wait(WAIT)
        # SQLite: the writer's transaction is open; a WAL reader is not blocked.
        assert store("get", "k") == "old"
        release.set()
        assert done.wait(WAIT)
        assert store("get", "k") == "new"
    finally:
        release.set()
        store.close()
        writer.join(WAIT)
    assert writer.exitcode == 0
    assert os.path.exists(path)
