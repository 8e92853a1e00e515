"""The conformance kit: keyshelf's own behaviour suite, for any backend.

keyshelf runs one suite of behaviour tests (:mod:`keyshelf.testing.conformance`)
on every built-in backend through both the sync and the async API. The same
suite ships here so that a backend written outside keyshelf can prove it
behaves like the built-in ones. A third party writes one fixture,
``keyshelf_backend``, in a test module that imports the suite::

    import pytest
    from keyshelf.testing.conformance import *  # noqa: F403

    @pytest.fixture
    def keyshelf_backend(tmp_path):
        yield f"mydb://{tmp_path / 'store'}", {}

and ``pytest`` runs every conformance test on that backend through both APIs
(docs/backends.md, "Writing a backend", walks through a whole example).

The fixture yields ``(url, options)`` for a fresh, empty store (and cleans up
after itself), or a :class:`BackendCase` when the backend is not shared by a
second ``open()`` of the same URL or expires keys by a server's clock.

This module holds the machinery the suite runs on: :class:`FakeClock` and
:class:`RealClock`, :class:`AsyncDriver` (drives an async store from the
suite's sync test bodies) and :class:`Opener` (opens stores on one backend
through one API). The fixtures are in :mod:`keyshelf.testing.plugin`.
It needs pytest and hypothesis (``pip install 'keyshelf[dev]'`` or your own
pins); ``import keyshelf`` never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest

# The suite's modules are imported by the user's test modules, not collected
# by pytest itself: ask pytest to rewrite their asserts too (it must be asked
# before they are imported), so a failure shows the values compared.
pytest.register_assert_rewrite("keyshelf.testing.conformance")

import keyshelf  # noqa: E402

__all__ = ["AsyncDriver", "BackendCase", "FakeClock", "Opener", "RealClock", "as_case"]


@dataclasses.dataclass(frozen=True)
class BackendCase:
    """One backend location for the suite: a fresh, empty store at ``url``.

    ``options`` are passed to every ``open()`` (the test's own options win).
    ``shared``: a second ``open()`` of ``url`` sees the first one's data
    (false only for stores private to one handle, like ``memory://``).
    ``server_clock``: keys expire by the server's own clock, not by the
    ``clock=`` option, so the suite uses :class:`RealClock` (and really waits).
    ``self_purging``: the backend removes expired keys by itself (Redis), so
    the suite does not count expired keys exactly; a backend that keeps them
    until ``delete_expired()`` leaves it False and gets the exact counts.
    ``name`` labels the backend (default: the URL scheme).
    """

    url: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    shared: bool = True
    server_clock: bool = False
    self_purging: bool = False
    name: str = ""

    @property
    def label(self) -> str:
        """``name``, or the URL's scheme."""
        return self.name or urlsplit(self.url).scheme


def as_case(value: Any) -> BackendCase:
    """A :class:`BackendCase` from what a ``keyshelf_backend`` fixture gave.

    Accepts a :class:`BackendCase`, a ``(url, options)`` pair or a URL;
    anything else raises TypeError naming what was given.
    """
    if isinstance(value, BackendCase):
        return value
    if isinstance(value, str):
        return BackendCase(value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], Mapping)
    ):
        return BackendCase(value[0], dict(value[1]))
    raise TypeError(
        "The keyshelf_backend fixture must give a URL, a (url, options) pair or a "
        f"keyshelf.testing.BackendCase, not {value!r}"
    )


class FakeClock:
    """An injectable clock that starts at the real time and moves on demand.

    Pass it as ``clock=``; ``advance(seconds)`` moves time on without waiting.
    ``server_clock`` is False: the store's clock decides what has expired, so a
    test may set ``now``. ``self_purging`` (given; False by default): the
    backend removes expired keys by itself, so counts of expired keys are not
    exact; False when expired records stay until purged.
    """

    server_clock = False

    def __init__(self, *, self_purging: bool = False) -> None:
        self.now = time.time()
        self.self_purging = self_purging

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RealClock:
    """The system clock, for backends whose server decides what has expired.

    ``advance(seconds)`` really sleeps. ``server_clock`` is True: the server's
    clock decides what has expired, so a test cannot set the time.
    ``self_purging`` (given): the server also removes expired keys by itself
    (Redis), so how many expired keys a count or a purge finds is not exact;
    False for a server that keeps them until purged (PostgreSQL).
    """

    server_clock = True

    def __init__(self, *, self_purging: bool = True) -> None:
        self.self_purging = self_purging

    def __call__(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)


class AsyncDriver:
    """Drive an AsyncStore from sync test code: every call is awaited on ``loop``.

    Method calls return what the awaited coroutine returns; async iterators
    come back as (fully collected) iterators; a returned AsyncStore (a
    namespace view) is driven too. ``iter_keys``/``iter_items`` reach the
    async names ``aiter_keys``/``aiter_items``, so one test body serves both
    APIs while the code under test is the async one.
    """

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
            if result is self._store:  # a builder's call returns the builder
                return self
            if isinstance(result, (keyshelf.AsyncStore, keyshelf.AsyncAtomic)):
                # A namespace view, or an atomic() builder (its commit is awaited).
                return AsyncDriver(result, self._loop)  # type: ignore[arg-type]
            return result

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._store.aclose())


async def _collect(agen: Any) -> list[Any]:
    return [item async for item in agen]


class Opener:
    """Opens stores on one backend location through one API.

    ``opener(**options)`` opens a store at ``url`` with the location's
    ``options``, ``clock=clock`` and the given ``options`` (those win),
    through the sync API (``api="sync"``) or the async one driven by an
    :class:`AsyncDriver` (``api="async"``). ``shared``: a second store opened
    sees the first one's data. :meth:`close` closes every store it opened.
    """

    def __init__(
        self, url: str, options: Mapping[str, Any], api: str, clock: Any, shared: bool
    ) -> None:
        self.url, self.options, self.api, self.clock = url, dict(options), api, clock
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
