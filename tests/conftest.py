"""Fixtures: every conformance test runs on every backend through both APIs.

The conformance suite ships with keyshelf (``keyshelf.testing.conformance``;
each ``tests/conformance/test_*.py`` runs one of its modules) together with
its fixtures (the ``keyshelf.testing.plugin`` plugin, loaded here). The
plugin runs a test on one backend given by the ``keyshelf_backend`` fixture;
this file overrides that fixture and ``backend_name`` to run it on every
backend of ``BACKENDS``: a context manager that yields ``(url, options)`` for
a fresh, empty store and cleans up after itself. The ``kv`` fixture is
parametrized over backends x {sync, async}: for the async API it wraps the
real ``AsyncStore`` in :class:`AsyncDriver`, which awaits every call on an
event loop, so the test body is shared while the code under test is the async
one. The plugin also loads the hypothesis profile of the suite (fixed
examples, no deadline; ``KEYSHELF_HYPOTHESIS=explore`` draws new ones).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keyshelf.testing import AsyncDriver, BackendCase, FakeClock, Opener, RealClock

__all__ = ["BACKENDS", "ON_CI", "AsyncDriver", "FakeClock", "Opener", "RealClock"]

# The kit's fixtures; pytester runs the kit as a third party would (test_testing_kit.py).
pytest_plugins = ["keyshelf.testing.plugin", "pytester"]

ON_CI = os.environ.get("CI") == "true"


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


# name -> (context manager yielding (url, options), server clock, purges by itself):
# "server clock": keys expire by the server's clock, so tests use the real clock;
# "purges by itself": the server removes expired keys on its own, so counts of
# expired keys are not exact (Redis; PostgreSQL keeps them until purged).
BACKENDS: dict[str, tuple[Callable[[Path], Any], bool, bool]] = {
    "memory": (memory_backend, False, False),
    "sqlite": (sqlite_backend, False, False),
    "file": (file_backend, False, False),
    "memory+cache": (memory_cache_backend, False, False),
    "sqlite+cache": (sqlite_cache_backend, False, False),
    "redis": (redis_backend, True, True),
    "postgres": (postgres_backend, True, False),
    # Expiry on S3 is judged by the store's clock, so the fake clock drives it.
    "s3": (s3_backend, False, False),
}


@pytest.fixture(params=list(BACKENDS))
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def keyshelf_backend(backend_name: str, tmp_path: Path) -> Iterator[BackendCase]:
    """The backend ``backend_name`` of ``BACKENDS``, for the kit's fixtures."""
    factory, server_clock, self_purging = BACKENDS[backend_name]
    with factory(tmp_path) as (url, options):
        yield BackendCase(
            url,
            options,
            shared=not backend_name.startswith("memory"),
            server_clock=server_clock,
            self_purging=self_purging,
            name=backend_name,
        )
