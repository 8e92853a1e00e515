"""Server outages mid-run: bounded errors, recovery, and nothing acknowledged lost.

The backend tests already stop servers between calls (tests/backends/test_redis.py,
test_postgres.py). Here a writer thread keeps writing — single keys, increments
and 20-key ``mset`` batches — while the server is killed under it:

* every call that fails raises a keyshelf ``BackendError`` (the driver's
  exception chained) within a bounded time; nothing hangs;
* once the server is back, calls succeed again without reopening the store;
* after the restart every acknowledged key and batch is there, every batch is
  entirely present or absent, and the counter is at least the acknowledged
  increments and at most those plus the failed ones (a failed call may or may
  not have been applied: keyshelf does not retry).

Redis runs with ``appendonly yes`` and ``appendfsync always`` and is killed
with SIGKILL; PostgreSQL is stopped in ``immediate`` mode (no shutdown
checkpoint: it recovers from its WAL on start).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import keyshelf

from ..backends import REDIS_SERVER, RedisServer
from ..backends import test_postgres_server as pg_server
from .workers import Caller

BATCH = 20


class Writer(threading.Thread):
    """Writes until stopped, logging every acknowledged and every failed operation."""

    def __init__(self, url: str, options: dict[str, Any], api: str) -> None:
        super().__init__(daemon=True)
        self.url, self.options, self.api = url, options, api
        self.stopping = threading.Event()
        self.keys: list[int] = []
        self.batches: list[int] = []
        self.tried_batches: list[int] = []
        self.increments = 0
        self.failed_increments = 0
        self.outcomes: list[tuple[float, float, BaseException | None]] = []
        self.problem: BaseException | None = None

    def run(self) -> None:
        try:
            call = Caller(self.url, self.options, self.api)
        except BaseException as exc:
            self.problem = exc
            return
        step = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            error: BaseException | None = None
            try:
                if step % 3 == 0:
                    call("set", f"key:{step}", {"step": step})
                    self.keys.append(step)
                elif step % 3 == 1:
                    call("increment", "counter")
                    self.increments += 1
                else:
                    self.tried_batches.append(step)
                    call("mset", {f"batch:{step}:{i:02d}": step for i in range(BATCH)})
                    self.batches.append(step)
            except BaseException as exc:
                error = exc
                if step % 3 == 1:
                    self.failed_increments += 1
            self.outcomes.append((started, time.monotonic() - started, error))
            step += 1
            time.sleep(0.002)
        with contextlib.suppress(keyshelf.KVError):
            call.close()

    def wait_for(self, failing: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.outcomes)
        while time.monotonic() < deadline:
            fresh = self.outcomes[seen:]
            if len(fresh) >= 3 and all((e is not None) == failing for _, _, e in fresh[-3:]):
                return
            time.sleep(0.02)
        raise AssertionError(f"no {'failing' if failing else 'working'} calls within {timeout}s")

    def finish(self) -> None:
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "the writer hung"
        assert self.problem is None, self.problem


def run_outage(
    url: str,
    options: dict[str, Any],
    api: str,
    stop: Callable[[], None],
    start: Callable[[], None],
    bound: float,
    cause: type[BaseException] | tuple[type[BaseException], ...],
) -> Writer:
    writer = Writer(url, options, api)
    writer.start()
    try:
        writer.wait_for(failing=False, timeout=20)
        time.sleep(0.3)
        stop()
        writer.wait_for(failing=True, timeout=bound + 10)
        time.sleep(0.5)
        start()
        writer.wait_for(failing=False, timeout=bound + 20)
    finally:
        writer.finish()
    errors = [(d, e) for _, d, e in writer.outcomes if e is not None]
    assert errors, "stopping the server made no call fail"
    for duration, error in errors:
        assert isinstance(error, keyshelf.BackendError), repr(error)
        assert isinstance(error.__cause__, cause), repr(error.__cause__)
        assert duration < bound, f"a call took {duration:.1f}s to fail"
    # Nothing acknowledged was lost; nothing was half applied.
    with keyshelf.open(url, **options) as kv:
        stored = kv.get_pattern("key:*")
        for step in writer.keys:
            assert stored.get(f"key:{step}") == {"step": step}, f"acknowledged key:{step} lost"
        counter = kv.get("counter", 0)
        assert writer.increments <= counter <= writer.increments + writer.failed_increments
        for step in writer.tried_batches:
            count = kv.key_count(f"batch:{step}:*")
            assert count in (0, BATCH), f"batch {step} is partial ({count} keys)"
            if step in writer.batches:
                assert count == BATCH, f"acknowledged batch {step} lost"
    return writer


def report(name: str, api: str, writer: Writer) -> None:
    failed = [d for _, d, e in writer.outcomes if e is not None]
    print(
        f"\n{name} ({api}): {len(writer.outcomes) - len(failed)} acknowledged, "
        f"{len(failed)} failed (slowest failure {max(failed):.2f}s); "
        f"{len(writer.keys)} keys, {len(writer.batches)} batches, "
        f"{writer.increments} increments acknowledged, all present after the restart"
    )


# -- Redis ------------------------------------------------------------------------------------


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server that fsyncs every write to its append-only file."""
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REDIS_SERVER} is needed on CI")
        pytest.skip(f"{REDIS_SERVER} is not installed")
    server = RedisServer()
    server.extra_args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    server.start()
    yield server
    if server.process is not None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_redis_killed_mid_run_loses_nothing_acknowledged(
    durable_redis: RedisServer, api: str
) -> None:
    redis = pytest.importorskip("redis")
    options = {"socket_timeout": 1, "socket_connect_timeout": 1}
    writer = run_outage(
        durable_redis.url,
        options,
        api,
        stop=durable_redis.stop,  # SIGKILL: no shutdown, no final save
        start=durable_redis.start,  # same port, replays the append-only file
        bound=5,
        cause=(redis.RedisError, OSError),
    )
    report("redis", api, writer)


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL server of our own, to crash and restart."""
    if pg_server.server_binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are needed on CI")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) to start a throwaway server")
    try:
        own = pg_server.Cluster()
        own.start()
    except RuntimeError as exc:
        pytest.skip(f"cannot start a throwaway PostgreSQL server: {exc}")
    try:
        yield own
    finally:
        own.destroy()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_postgres_crashed_mid_run_loses_nothing_acknowledged(cluster: Any, api: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    options = {"schema": pg_server.fresh_schema(), "connect_timeout": 2, "max_size": 4}

    def start() -> None:
        cluster.start()

    try:
        writer = run_outage(
            cluster.url,
            options,
            api,
            stop=lambda: cluster.stop("immediate"),
            start=start,
            bound=10,
            cause=psycopg.Error,
        )
    finally:
        if not cluster.running:
            cluster.start()
    report("postgres", api, writer)
