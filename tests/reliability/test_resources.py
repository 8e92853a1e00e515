"""Resource hygiene: open/close cycles leak no file descriptor, thread, task or connection.

Every backend, both APIs: a store is opened, used and closed over and over
(200 times in the default run, 50 on S3; under ``make stress`` 10,000 times
for each backend itself but S3, the cache tiers being wrappers over them,
and 200 times on S3); afterwards the process holds the same file
descriptors and threads as before, the event loop has no task left, and the
Redis and PostgreSQL servers list no connection of ours. ``auto_cleanup``
sweeper threads and tasks stop on close.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import keyshelf

from . import helpers


def _named_options(backend: str, options: dict[str, Any], name: str) -> dict[str, Any]:
    """Options that label the store's server connections, so they can be counted."""
    if backend == "redis":
        return {**options, "client_name": name}
    if backend == "postgres":
        return {**options, "application_name": name}
    return options


def _server_connections(backend: str, url: str, name: str) -> int:
    """How many connections labelled ``name`` the server has open now."""
    if backend == "redis":
        from ..backends import client_for

        client = client_for(url)
        try:
            return sum(1 for c in client.client_list() if c.get("name") == name)
        finally:
            client.close()
    if backend == "postgres":
        from ..backends import test_postgres_server as pg_server

        row = (
            pg_server.admin()
            .execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,))
            .fetchone()
        )
        return int(row[0])
    return 0


def _settled(backend: str, url: str, name: str, timeout: float = 5.0) -> int:
    """Server-side counts lag a closed socket a little: wait for them to drop."""
    deadline = time.monotonic() + timeout
    while True:
        count = _server_connections(backend, url, name)
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def cycle(url: str, options: dict[str, Any], api: str, rounds: int) -> None:
    if api == "sync":
        for i in range(rounds):
            with keyshelf.open(url, **options) as kv:
                kv.set("k", i)
                assert kv.get("k") == i
        return

    async def run() -> None:
        for i in range(rounds):
            async with keyshelf.open_async(url, **options) as kv:
                await kv.set("k", i)
                assert await kv.get("k") == i
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == [], f"tasks left behind: {others}"

    asyncio.run(run())


def run_cycles(backend: str, api: str, tmp_path: Path, rounds: int) -> dict[str, Any]:
    name = f"keyshelf-test-{uuid.uuid4().hex[:12]}"
    with helpers.location(backend, tmp_path) as (url, given):
        options = _named_options(backend, given, name)
        cycle(url, options, api, 5)  # warm up: lazy imports, the event loop's own pools
        fds, threads = helpers.fd_count(), threading.active_count()
        started = time.monotonic()
        cycle(url, options, api, rounds)
        elapsed = time.monotonic() - started
        leaked_fds = helpers.fd_count() - fds
        leaked_threads = threading.active_count() - threads
        connections = _settled(backend, url, name)
    assert leaked_fds <= 0, f"{leaked_fds} file descriptors leaked over {rounds} cycles"
    assert leaked_threads <= 0, f"{leaked_threads} threads leaked: {threading.enumerate()}"
    assert connections == 0, f"{connections} server connections left open"
    assert helpers.keyshelf_threads() == []
    return {"rounds": rounds, "per_cycle_ms": 1000 * elapsed / rounds}


# An S3 cycle is ~60 ms of HTTP round trips on moto: the default run does 50 of
# them (any resource left per cycle still shows 50 times over), the stress run
# the same 200 as every other backend.
S3_DEFAULT_ROUNDS = 50


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("backend", helpers.EVERY)
def test_open_close_cycles_leak_nothing(backend: str, api: str, tmp_path: Path) -> None:
    run_cycles(backend, api, tmp_path, rounds=S3_DEFAULT_ROUNDS if backend == "s3" else 200)


@pytest.mark.stress
@pytest.mark.parametrize("api", ["sync", "async"])
def test_two_hundred_s3_open_close_cycles(api: str, tmp_path: Path) -> None:
    run_cycles("s3", api, tmp_path, rounds=200)


@pytest.mark.stress
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("backend", ["memory", "sqlite", "file", "redis", "postgres"])
def test_ten_thousand_open_close_cycles(backend: str, api: str, tmp_path: Path) -> None:
    figures = run_cycles(backend, api, tmp_path, rounds=10_000)
    print(f"\n{backend} ({api}): 10,000 cycles, {figures['per_cycle_ms']:.2f} ms each, no leak")


# -- auto_cleanup stops on close ----------------------------------------------------------------


@pytest.mark.parametrize("backend", helpers.EVERY)
def test_cleanup_thread_stops_on_close(backend: str, tmp_path: Path) -> None:
    with helpers.location(backend, tmp_path) as (url, options):
        before = threading.active_count()
        kv = keyshelf.open(url, auto_cleanup=True, cleanup_interval=0.02, **options)
        kv.set("short", 1, ttl=0.05)
        sweepers = [t for t in helpers.keyshelf_threads() if t.name == "keyshelf-cleanup"]
        assert len(sweepers) == 1 and sweepers[0].is_alive()
        view = kv.namespace("other")
        view.close()  # closing a view stops nothing
        assert sweepers[0].is_alive()
        time.sleep(0.2)
        kv.close()
        assert not sweepers[0].is_alive()
        assert helpers.keyshelf_threads() == []
        assert threading.active_count() <= before


def _is_sweeper(task: asyncio.Task[Any]) -> bool:
    return task.get_coro().__qualname__ == "ASweeper._run"  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", helpers.EVERY)
def test_cleanup_task_stops_on_close(backend: str, tmp_path: Path) -> None:
    with helpers.location(backend, tmp_path) as (url, options):

        async def run() -> None:
            async with keyshelf.open_async(
                url, auto_cleanup=True, cleanup_interval=0.02, **options
            ) as kv:
                await kv.set("short", 1, ttl=0.05)
                sweepers = [t for t in asyncio.all_tasks() if _is_sweeper(t)]
                assert len(sweepers) == 1
                await asyncio.sleep(0.2)
                assert not sweepers[0].done()
            assert sweepers[0].done()
            left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert left == [], left

        asyncio.run(run())
        assert helpers.keyshelf_threads() == []
