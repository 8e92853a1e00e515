"""Fixtures: every conformance test runs on every backend through both APIs.

A backend joins the suite by adding an entry to ``BACKENDS``: a context
manager that yields ``(url, options)`` for a fresh, empty store and cleans up
after itself. The ``kv`` fixture is parametrized over backends x {sync, async}:
for the async API it wraps the real ``AsyncStore`` in :class:`AsyncDriver`,
which awaits every call on an event loop, so the test body is shared while
the code under test is the async one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import keyshelf

ON_CI = os.environ.get("CI") == "true"

# The default suite must give the same answer on every run and under any load:
# property tests run a fixed sequence of examples and have no per-example
# deadline (a loaded 2-core machine made a 200 ms deadline fail at random).
# KEYSHELF_HYPOTHESIS=explore draws new random examples (make stress uses it).
settings.register_profile(
    "suite",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("KEYSHELF_HYPOTHESIS", "suite"))


class FakeClock:
    """An injectable clock that starts at the real time and moves on demand."""

    native = False

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RealClock:
    """The system clock, for backends whose server expires keys by itself."""

    native = True

    def __call__(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)


class AsyncDriver:
    """Drive an AsyncStore from sync test code: every call is awaited on ``loop``."""

    def __init__(self, store: keyshelf.AsyncStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop
        self.api = "async"

    def __getattr__(self, name: str) -> Any:
        # The async names of the sync streaming methods.
        name = {"iter_keys": "aiter_keys", "iter_items": "aiter_items"}.get(name, name)
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if inspect.iscoroutine(result):
                return self._loop.run_until_complete(result)
            if inspect.isasyncgen(result):
                return iter(self._loop.run_until_complete(_collect(result)))
            if isinstance(result, keyshelf.AsyncStore):
                return AsyncDriver(result, self._loop)
            return result

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._store.aclose())


async def _collect(agen: Any) -> list[Any]:
    return [item async for item in agen]


@contextlib.contextmanager
def memory_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "memory://", {}


@contextlib.contextmanager
def sqlite_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    yield f"sqlite:///{tmp_path / 'store.db'}", {}


@contextlib.contextmanager
def file_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    yield f"file://{tmp_path / 'store.json'}", {}


@contextlib.contextmanager
def memory_cache_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    # The read-through cache tier in front of a backend (cache=..., docs/cache.md).
    yield "memory://", {"cache": "memory"}


@contextlib.contextmanager
def sqlite_cache_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    yield f"sqlite:///{tmp_path / 'store.db'}", {"cache": "memory", "cache_size": 64}


@contextlib.contextmanager
def redis_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    # A real server (tests/backends/__init__.py finds or starts one), own key prefix.
    from importlib import import_module

    helpers = import_module(".backends" if __package__ else "backends", __package__ or None)
    with helpers.redis_store() as found:
        yield found


@contextlib.contextmanager
def postgres_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    # A real server (tests/backends/test_postgres_server.py finds or starts one), own schema.
    from importlib import import_module

    name = "backends.test_postgres_server"
    helpers = import_module(f".{name}" if __package__ else name, __package__ or None)
    with helpers.postgres_backend(tmp_path) as found:
        yield found


@contextlib.contextmanager
def s3_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    # A real S3-compatible server (tests/backends/s3_server.py starts one), own prefix.
    from importlib import import_module

    name = "backends.s3_server"
    helpers = import_module(f".{name}" if __package__ else name, __package__ or None)
    with helpers.s3_store() as found:
        yield found


# name -> (context manager yielding (url, options), uses server-side expiry)
BACKENDS: dict[str, tuple[Callable[[Path], Any], bool]] = {
    "memory": (memory_backend, False),
    "sqlite": (sqlite_backend, False),
    "file": (file_backend, False),
    "memory+cache": (memory_cache_backend, False),
    "sqlite+cache": (sqlite_cache_backend, False),
    "redis": (redis_backend, True),
    "postgres": (postgres_backend, True),
    # Expiry on S3 is judged by the store's clock, so the fake clock drives it.
    "s3": (s3_backend, False),
}


class Opener:
    """Opens stores on one backend location through one API."""

    def __init__(
        self, url: str, options: dict[str, Any], api: str, clock: Any, shared: bool
    ) -> None:
        self.url, self.options, self.api, self.clock = url, options, api, clock
        self.shared = shared  # a second open() sees the same data
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened: list[Any] = []

    def __call__(self, **options: Any) -> Any:
        merged = {"clock": self.clock, **self.options, **options}
        if self.api == "sync":
            store: Any = keyshelf.open(self.url, **merged)
        else:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            store = AsyncDriver(keyshelf.open_async(self.url, **merged), self._loop)
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in reversed(self._opened):
            with contextlib.suppress(keyshelf.KVError):
                store.close()
        if self._loop is not None:
            self._loop.close()


@pytest.fixture(params=list(BACKENDS))
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(backend_name: str) -> Any:
    return RealClock() if BACKENDS[backend_name][1] else FakeClock()


@pytest.fixture
def opener(backend_name: str, api: str, clock: Any, tmp_path: Path) -> Iterator[Opener]:
    factory, _native = BACKENDS[backend_name]
    with factory(tmp_path) as (url, options):
        opened = Opener(url, options, api, clock, shared=not backend_name.startswith("memory"))
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture
def kv(opener: Opener) -> Any:
    """A fresh, empty store on every backend through both APIs."""
    return opener()
