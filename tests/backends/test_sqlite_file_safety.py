"""Several stores on one SQLite file in one process never lose a write.

SQLite coordinates processes with POSIX advisory locks, and closing *any*
descriptor of a file drops every such lock the process holds on it. If
keyshelf opened and closed the database file itself (say, to read its
header) while a store of the same process was connected, another process
would believe it was the last connection and delete the WAL under that store:
every later write of the store would vanish, with ``PRAGMA integrity_check``
still saying ok. These tests run the scenario with real processes (spawned,
synchronised through events, never through sleeps):

* process A opens two stores on ``app.db`` (sync or async API);
* process B (keyshelf, or the ``keyshelf`` CLI) opens, sets a key, closes;
* A's first store writes 3,000 keys with ``mset``;
* process C holds the file open while A closes, so A is not the last
  connection and does not checkpoint;
* after everyone has closed, all 3,000 keys must be in the file.

Export and import refuse a database file (or sidecar) of an open store, and
the JSON file backend refuses to open one, for the same reason.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

import keyshelf

KEYS = 3000
WAIT = 120  # seconds: a bound against a hang, never reached when things work


def _wait(event: Any, what: str) -> None:
    if not event.wait(WAIT):
        raise TimeoutError(f"gave up waiting for {what}")


def _process_a(path: str, api: str, opened: Any, b_done: Any, written: Any, c_holds: Any) -> None:
    """Two stores on one file; write with the first after B has come and gone."""
    batch = {f"a:{i:05d}": i for i in range(KEYS)}
    if api == "sync":
        a1 = keyshelf.open(path)
        a2 = keyshelf.open(path)
        opened.set()
        _wait(b_done, "process B")
        assert a1.mset(batch) is True
        assert a2.get("a:00000") == 0
        written.set()
        _wait(c_holds, "process C")
        a1.close()
        a2.close()
        return

    async def run() -> None:
        b1 = keyshelf.open_async(path)
        b2 = keyshelf.open_async(path)
        await b1.get("warm")  # a connection in a worker thread too
        opened.set()
        _wait(b_done, "process B")
        assert await b1.mset(batch) is True
        assert await b2.get("a:00000") == 0
        written.set()
        _wait(c_holds, "process C")
        await b1.aclose()
        await b2.aclose()

    asyncio.run(run())


def _process_b(path: str) -> None:
    with keyshelf.open(path) as kv:
        kv.set("b", "from B")


def _process_c(path: str, c_holds: Any, release: Any) -> None:
    """Keep the file open (with a live connection) until told to let go."""
    with keyshelf.open(path) as kv:
        kv.get("a:00000")
        c_holds.set()
        _wait(release, "the release")


def _await(event: Any, process: Any, errors: Any, what: str) -> None:
    """Wait for ``event``; fail at once (with its traceback) if ``process`` dies first."""
    for _ in range(WAIT * 20):
        if event.wait(0.05):
            return
        if not process.is_alive():
            detail = errors.get(timeout=5) if not errors.empty() else ""
            raise AssertionError(f"{what}: exit code {process.exitcode}\n{detail}")
    raise TimeoutError(f"gave up waiting for {what}")


def _guarded(target: Any, errors: Any, *args: Any) -> None:
    try:
        target(*args)
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def _count_keys(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM keyshelf WHERE key LIKE 'a:%'").fetchone()[0])
    finally:
        conn.close()


def _run_scenario(path: Path, api: str, b_is_cli: bool) -> None:
    ctx = multiprocessing.get_context("spawn")
    opened, b_done, written, c_holds, release = (ctx.Event() for _ in range(5))
    errors = ctx.Queue()
    a = ctx.Process(
        target=_guarded,
        args=(_process_a, errors, str(path), api, opened, b_done, written, c_holds),
    )
    c = ctx.Process(target=_guarded, args=(_process_c, errors, str(path), c_holds, release))
    a.start()
    try:
        _await(opened, a, errors, "process A opening its stores")
        if b_is_cli:
            done = subprocess.run(
                [sys.executable, "-m", "keyshelf", "set", "b", '"from B"', "--url", str(path)],
                check=False,
                capture_output=True,
                text=True,
                timeout=WAIT,
            )
            assert done.returncode == 0, done.stderr
        else:
            b = ctx.Process(target=_guarded, args=(_process_b, errors, str(path)))
            b.start()
            b.join(WAIT)
            assert b.exitcode == 0, errors.get(timeout=5)
        b_done.set()
        _await(written, a, errors, "process A writing")
        c.start()
        _await(c_holds, c, errors, "process C holding the file")
        a.join(WAIT)
        assert a.exitcode == 0, errors.get(timeout=5)
    finally:
        release.set()
        if c.pid is not None:
            c.join(WAIT)
        if a.is_alive():
            a.kill()
            a.join()
    assert c.exitcode == 0, errors.get(timeout=5)
    assert _count_keys(path) == KEYS
    with keyshelf.open(path) as kv:
        assert kv.get("b") == "from B"
        assert kv.get(f"a:{KEYS - 1:05d}") == KEYS - 1
        assert kv.key_count("a:*") == KEYS


@pytest.mark.timeout(300)
@pytest.mark.parametrize("api", ["sync", "async"])
def test_two_stores_in_one_process_lose_no_write(tmp_path: Path, api: str) -> None:
    _run_scenario(tmp_path / "app.db", api, b_is_cli=False)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("api", ["sync", "async"])
def test_two_stores_in_one_process_lose_no_write_with_the_cli_as_b(
    tmp_path: Path, api: str
) -> None:
    _run_scenario(tmp_path / "app.db", api, b_is_cli=True)


# -- nothing else in keyshelf opens a database file that a store holds --------------------


@pytest.mark.parametrize("sidecar", ["", "-wal", "-shm"])
def test_export_and_import_refuse_the_database_file_of_an_open_store(
    tmp_path: Path, sidecar: str
) -> None:
    path = tmp_path / "app.db"
    with keyshelf.open(path) as kv:
        kv.set("k", 1)
        target = Path(f"{path}{sidecar}")
        assert target.exists()
        with pytest.raises(keyshelf.InvalidArgumentError, match="open store"):
            kv.import_(target)
        with pytest.raises(keyshelf.InvalidArgumentError, match="open store"):
            kv.export(target)
        assert kv.get("k") == 1
    with keyshelf.open(path) as kv:
        assert kv.get("k") == 1


def test_the_file_backend_refuses_the_database_file_of_an_open_store(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with keyshelf.open(path) as kv:
        kv.set("k", 1)
        before = os.stat(path)
        with pytest.raises(keyshelf.IncompatibleStoreError, match="open SQLite store"):
            keyshelf.open(f"file://{path}")
        assert os.stat(path).st_ino == before.st_ino
        assert not Path(f"{path}.lock").exists()
    # Once the SQLite store is closed the file backend may look (and refuses
    # it as not a JSON store, unchanged).
    content = path.read_bytes()
    with pytest.raises(keyshelf.IncompatibleStoreError, match="not a keyshelf JSON store"):
        keyshelf.open(f"file://{path}")
    assert path.read_bytes() == content


def test_two_file_stores_on_one_path_in_one_process_lose_no_update(tmp_path: Path) -> None:
    # The file backend locks with flock(), which belongs to an open file
    # description, not to the process: closing one store's descriptors never
    # releases the lock another store (or another process) holds.
    url = f"file://{tmp_path / 'cfg.json'}"
    first = keyshelf.open(url)
    second = keyshelf.open(url)
    try:
        for _ in range(50):
            first.increment("n")
            second.increment("n")
            third = keyshelf.open(url)
            third.close()
        assert first.get("n") == second.get("n") == 100
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("sidecar", ["-wal", "-shm"])
def test_a_sidecar_of_an_open_store_is_not_opened_as_a_database(
    tmp_path: Path, sidecar: str
) -> None:
    path = tmp_path / "app.db"
    with keyshelf.open(path) as kv:
        kv.set("k", 1)
        with pytest.raises(keyshelf.IncompatibleStoreError, match="of an open store"):
            keyshelf.open(f"{path}{sidecar}")
        with keyshelf.open(path) as again:  # the database itself: a second store is fine
            assert again.get("k") == 1
