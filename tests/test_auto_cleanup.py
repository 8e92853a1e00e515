"""auto_cleanup: a background sweep purges expired keys of every namespace and stops on close."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import keyshelf
from keyshelf.backends.sqlite import SQLiteBackend


def wait_for(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_sync_sweep_purges_every_namespace(tmp_path: Path) -> None:
    kv = keyshelf.open(tmp_path / "a.db", auto_cleanup=True, cleanup_interval=0.05)
    kv.set("a", 1, ttl=0.05)
    kv.namespace("other").set("b", 1, ttl=0.05)
    kv.set("keep", 1)
    backend = kv.backend
    assert isinstance(backend, SQLiteBackend)
    assert wait_for(lambda: kv.stats()["total_keys"] == 1)
    assert wait_for(lambda: kv.namespace("other").stats()["total_keys"] == 0)
    threads = [t for t in threading.enumerate() if t.name == "keyshelf-cleanup"]
    assert threads
    kv.close()
    assert all(not t.is_alive() for t in threads)


def test_views_do_not_stop_the_sweep(tmp_path: Path) -> None:
    with keyshelf.open("memory://", auto_cleanup=True, cleanup_interval=0.05) as kv:
        kv.namespace("v").close()
        kv.set("a", 1, ttl=0.05)
        assert wait_for(lambda: kv.stats()["total_keys"] == 0)


def test_async_sweep_is_a_task_and_stops(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyshelf.open_async(
            tmp_path / "b.db", auto_cleanup=True, cleanup_interval=0.05
        ) as akv:
            await akv.set("a", 1, ttl=0.05)
            for _ in range(200):
                if (await akv.stats())["total_keys"] == 0:
                    break
                await asyncio.sleep(0.01)
            assert (await akv.stats())["total_keys"] == 0
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert len(tasks) == 1
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert tasks == []

    asyncio.run(main())


def test_no_sweep_by_default() -> None:
    with keyshelf.open("memory://") as kv:
        assert not any(t.name == "keyshelf-cleanup" for t in threading.enumerate())
        kv.set("a", 1)
