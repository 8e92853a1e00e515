"""``open_async()`` never blocks the event loop while it connects (Redis, PostgreSQL).

Each test reaches the real server through a loopback TCP proxy of its own
that holds every chunk the server sends for a while, so that connecting,
probing the server, loading the Redis scripts and preparing the PostgreSQL
schema all take visible time. A heartbeat task ticks every few milliseconds
meanwhile; every time the proxy holds a reply, the heartbeat must keep
ticking. A synchronous connect inside ``open_async()`` (or anywhere in the
first calls) stops the loop for the whole hold, and the test fails.

The default suite checks that the loop runs during every hold (a count of
ticks, robust on a loaded machine); the stress run also checks the exact
promise: no gap between two ticks above 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from benchmarks.roundtrips import LoopbackProxy, proxied

import keyshelf

from . import redis_store
from .test_postgres_server import drop_schema, fresh_schema, server_url

#: How long the proxy holds each chunk the server sends.
DELAY = 0.25
#: The heartbeat's period.
TICK = 0.005
#: The promise: the event loop never stalls longer than this while a store opens.
MAX_GAP = 0.05


class SlowProxy(LoopbackProxy):
    """A loopback TCP proxy to ``upstream`` that delays the server's replies.

    Bytes from the client pass at once; every chunk from the server is held
    ``delay`` seconds before it is forwarded. Each hold is recorded as
    ``(start, end)`` in ``time.monotonic()`` seconds. Runs in threads of its
    own, never in the event loop under test.
    """

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.delay = delay
        self.holds: list[tuple[float, float]] = []
        super().__init__(upstream)

    def relay(self, data: bytes, up: bool, connection: dict[str, str]) -> None:
        if not up:
            started = time.monotonic()
            time.sleep(self.delay)
            self.holds.append((started, time.monotonic()))


def slow_proxy(url: str) -> contextlib.AbstractContextManager[tuple[SlowProxy, str]]:
    """A proxy in front of the server of ``url``; yields it and the URL through it."""
    return proxied(url, lambda upstream: SlowProxy(upstream, DELAY))


def _runqueue_wait() -> float:
    """Seconds this thread has waited on the CPU run queue (preempted), 0.0 if unknown.

    Linux's per-thread schedstat: run time, run-queue wait, time slices (ns).
    """
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def _heartbeat_while(work: Callable[[], Awaitable[None]]) -> list[tuple[float, float]]:
    """Run ``work`` while a heartbeat task ticks; return each tick's time and run-queue wait.

    A tick is ``(time.monotonic(), _runqueue_wait())`` of the loop's thread:
    the second tells the part of a gap the kernel spent running other threads.
    """
    ticks: list[tuple[float, float]] = []
    done = asyncio.Event()

    async def beat() -> None:
        while not done.is_set():
            ticks.append((time.monotonic(), _runqueue_wait()))
            await asyncio.sleep(TICK)

    task = asyncio.create_task(beat())
    await asyncio.sleep(0.02)  # the heartbeat is running before the store is opened
    try:
        await work()
    finally:
        done.set()
        await task
    ticks.append((time.monotonic(), _runqueue_wait()))
    return ticks


def _open_and_use(url: str, options: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    async def work() -> None:
        akv = keyshelf.open_async(url, **options)  # a plain call: it must not connect
        try:
            async with akv:
                assert await akv.set("k", 1) is True
                assert await akv.get("k") == 1
        finally:
            await akv.aclose()

    return work


@contextlib.contextmanager
def _through_proxy(kind: str) -> Iterator[tuple[SlowProxy, str, dict[str, Any]]]:
    if kind == "redis":
        pytest.importorskip("redis")
        with redis_store() as (url, options), slow_proxy(url) as (proxy, slow_url):
            yield proxy, slow_url, options
        return
    pytest.importorskip("psycopg")
    url = server_url()
    schema = fresh_schema()
    try:
        with slow_proxy(url) as (proxy, slow_url):
            yield proxy, slow_url, {"schema": schema, "connect_timeout": 10}
    finally:
        drop_schema(schema)


def _measure(
    kind: str, *, warm: bool = False
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Heartbeat ticks while a store opens through the slow proxy, and the proxy's holds.

    ``warm``: open and use a store once before, unmeasured, so that the
    process's one-time work (importing the driver and the backend's modules:
    40-90 ms of the loop's thread on this machine) is not in the figures.
    """
    with _through_proxy(kind) as (proxy, url, options):
        if warm:
            asyncio.run(_open_and_use(url, options)())
            proxy.holds.clear()
        ticks = asyncio.run(_heartbeat_while(_open_and_use(url, options)))
        holds = list(proxy.holds)
    # Connecting and the first calls took several delayed replies.
    assert len(holds) >= 4, holds
    return ticks, holds


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_open_async_keeps_the_event_loop_running(kind: str) -> None:
    ticks, holds = _measure(kind)
    for start, end in holds:
        inside = sum(1 for tick, _wait in ticks if start < tick < end)
        # About DELAY / TICK = 50 ticks fit in a hold; a blocked loop makes none.
        assert inside >= 3, f"the event loop stalled during a {end - start:.3f} s reply"


@pytest.mark.stress
@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_open_async_never_stalls_the_event_loop_over_50_ms(kind: str) -> None:
    # A gap counts without the time the kernel kept the loop's thread waiting
    # for a CPU (other processes' work on a loaded machine, not keyshelf's):
    # a synchronous wait inside open_async() sleeps in a system call, which
    # is not run-queue time, and stalls a whole hold (DELAY, 250 ms). The
    # first open of a process imports the driver on the loop's thread
    # (docs/guarantees.md): measured warm.
    ticks, _holds = _measure(kind, warm=True)
    stalls = [(t2 - t1) - (w2 - w1) for (t1, w1), (t2, w2) in itertools.pairwise(ticks)]
    worst = max(stalls)
    assert worst <= MAX_GAP, (
        f"the event loop stalled for {worst * 1000:.0f} ms (preemption excluded)"
    )


def _unreachable(kind: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    if kind == "redis":
        pytest.importorskip("redis")
        return f"redis://127.0.0.1:{port}/0?socket_connect_timeout=1"
    pytest.importorskip("psycopg")
    return f"postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=2"


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_async_with_refuses_a_server_that_cannot_work(kind: str) -> None:
    # open_async() itself does no I/O; entering the store connects, so the
    # error comes from the async with statement, before its body runs.
    url = _unreachable(kind)
    entered = False

    async def run() -> None:
        nonlocal entered
        store = keyshelf.open_async(url)
        async with store:
            entered = True

    where = urlsplit(url)
    with pytest.raises(keyshelf.BackendUnavailableError, match=f"127.0.0.1:{where.port}"):
        asyncio.run(run())
    assert not entered
    # Bad options are still refused by open_async() itself, at once.
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open_async(url, bogus=1)
