"""The read-through cache tier: hits, invalidation, bounds, staleness, expiry (docs/cache.md)."""

from __future__ import annotations

import asyncio
import collections
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.backends._cache_async import AsyncCachedBackend
from keyshelf.backends._cache_sync import CachedBackend
from keyshelf.backends.cache import CacheConfig, RecordCache
from keyshelf.records import Record

from .conftest import BACKENDS, FakeClock
from .test_migrate import STORAGE, store_on


class Counting:
    """Counts every call that reaches the wrapped backend, by primitive."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: collections.Counter[str] = collections.Counter()
        self.location = inner.location

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return call

    def total(self) -> int:
        return sum(self.calls.values())


def cached(url: str = "memory://", **options: Any) -> tuple[Any, Counting]:
    kv = keyshelf.open(url, cache="memory", **options)
    backend = kv.backend
    assert isinstance(backend, CachedBackend)
    counting = Counting(backend.inner)
    backend.inner = counting  # type: ignore[assignment]
    return kv, counting


# -- hits ---------------------------------------------------------------------------


def test_hits_do_not_touch_the_backend() -> None:
    kv, backend = cached(clock=FakeClock())
    kv.set("k", {"a": 1}, ttl=100, metadata={"m": 1})
    kv.set("j", 2)
    assert kv.get("k") == {"a": 1}
    assert backend.calls["get_record"] == 1
    before = backend.total()
    for _ in range(10):
        assert kv.get("k") == {"a": 1}
        assert kv.exists("k") is True
        assert kv.get_metadata("k") == {"m": 1}
        entry = kv.get_entry("k")
        assert entry is not None and entry.version == 1
        assert kv["k"] == {"a": 1} and "k" in kv
    assert backend.total() == before
    # ttl() is the exception: it asks the backend's clock every time.
    assert kv.ttl("k") == pytest.approx(100, abs=0.01)
    assert backend.calls["time_left"] == 1 and backend.total() == before + 1
    kv.get("j")
    assert kv.mget(["k", "j"]) == {"k": {"a": 1}, "j": 2}
    assert kv.get_many(["k", "j", "missing"]) == {"k": {"a": 1}, "j": 2}
    assert backend.calls["get_many"] == 1  # only "missing" went to the backend
    cache = kv.backend.cache
    assert cache.hits >= 60 and cache.misses == 3


def test_misses_are_cached_too() -> None:
    kv, backend = cached(clock=FakeClock())
    assert kv.get("missing") is None
    assert kv.exists("missing") is False
    assert backend.total() == 1
    assert kv.ttl("missing") == -1 and backend.calls["time_left"] == 1
    kv.set("missing", 1)
    assert kv.get("missing") == 1


def test_listings_always_go_to_the_backend() -> None:
    kv, backend = cached()
    kv.mset({"a": 1, "b": 2})
    for _ in range(3):
        assert kv.keys() == ["a", "b"] and kv.key_count() == 2 and kv.size() == 2
        assert kv.get_pattern("*") == {"a": 1, "b": 2}
    assert backend.calls["scan"] == 6 and backend.calls["count"] == 6


# -- invalidation by every write primitive ------------------------------------------------


def _import(kv: Any) -> None:
    source = keyshelf.open("memory://", clock=kv._clock)
    source.set("k", "imported", metadata={"from": "file"})
    out = io.BytesIO()
    source.export(out)
    out.seek(0)
    kv.import_(out)


def _migrate(kv: Any) -> None:
    source = keyshelf.open("memory://", clock=kv._clock)
    source.set("k", "migrated", ttl=50)
    keyshelf.migrate(source, kv)


WRITES: dict[str, Callable[[Any], Any]] = {
    "set": lambda kv: kv.set("k", 2),
    "set-ttl": lambda kv: kv.set("k", 2, ttl=30),
    "set-metadata": lambda kv: kv.set("k", 2, metadata={"new": True}),
    "set-xx": lambda kv: kv.set("k", 3, xx=True),
    "set-keep-ttl": lambda kv: kv.set("k", 3, keep_ttl=True),
    "setitem": lambda kv: kv.__setitem__("k", 4),
    "mset": lambda kv: kv.mset({"k": 5, "other": 1}),
    "set_many": lambda kv: kv.set_many({"k": 6}, ttl=9),
    "delete": lambda kv: kv.delete("k"),
    "delitem": lambda kv: kv.__delitem__("k"),
    "delete_many": lambda kv: kv.delete_many(["k", "x"]),
    "delete_pattern": lambda kv: kv.delete_pattern("k*"),
    "clear": lambda kv: kv.clear(),
    "clear_namespace": lambda kv: kv.namespace("elsewhere").clear_namespace("default"),
    "increment": lambda kv: kv.increment("k", 10),
    "decrement": lambda kv: kv.decrement("k"),
    "append-missing": lambda kv: (kv.delete("k"), kv.append("k", "x")),
    "compare_and_swap": lambda kv: kv.compare_and_swap("k", 1, "swapped"),
    "set_metadata": lambda kv: kv.set_metadata("k", {"b": 2}),
    "set_metadata-replace": lambda kv: kv.set_metadata("k", {"b": 2}, replace=True),
    "set_metadata-ttl": lambda kv: kv.set_metadata("k", {"ttl": 5}),
    "expire": lambda kv: kv.expire("k", 7),
    "persist": lambda kv: kv.persist("k"),
    "setnx-after-delete": lambda kv: (kv.delete("k"), kv.setnx("k", "locked", ttl=3)),
    "view-write": lambda kv: kv.namespace("default").set("k", "via view"),
    "import": _import,
    "migrate": _migrate,
}


def observe(kv: Any) -> tuple[Any, ...]:
    entry = kv.get_entry("k")
    version = None if entry is None else entry.version
    return (kv.get("k"), kv.exists("k"), kv.ttl("k"), kv.get_metadata("k"), version)


@pytest.mark.parametrize("name", list(WRITES))
@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_every_write_through_the_store_invalidates(name: str, url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    target = url if url == "memory://" else f"sqlite:///{tmp_path / 'c.db'}"
    plain_url = "memory://" if url == "memory://" else f"sqlite:///{tmp_path / 'p.db'}"
    kv, _backend = cached(target, clock=clock)
    oracle = keyshelf.open(plain_url, clock=clock)
    for store in (kv, oracle):
        store.set("k", 1, ttl=100, metadata={"a": 1})
        observe(store)  # now cached
        WRITES[name](store)
    assert observe(kv) == observe(oracle)


def test_purge_and_failed_writes_keep_the_cache_right() -> None:
    clock = FakeClock()
    kv, _ = cached(clock=clock)
    kv.set("k", "text")
    kv.get("k")
    with pytest.raises(keyshelf.NotNumericError):
        kv.increment("k")
    assert kv.get("k") == "text"
    kv.set("t", 1, ttl=1)
    kv.get("t")
    clock.advance(2)
    assert kv.delete_expired() == 1
    assert kv.get("t") is None


# -- bounds, staleness, expiry ------------------------------------------------------------


def test_entries_are_bounded_least_recently_used_first() -> None:
    kv, backend = cached(cache_size=3, clock=FakeClock())
    kv.mset({f"k{i}": i for i in range(5)})
    for i in range(5):
        kv.get(f"k{i}")
    cache = kv.backend.cache
    assert len(cache) == 3
    reads = backend.calls["get_record"]
    kv.get("k4")
    kv.get("k2")  # k2..k4 are cached
    assert backend.calls["get_record"] == reads
    kv.get("k0")  # evicted earlier: read through, evicts k3 (least recently used)
    assert backend.calls["get_record"] == reads + 1
    kv.get("k3")
    assert backend.calls["get_record"] == reads + 2
    assert len(cache) == 3


def test_other_writers_are_seen_within_cache_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path / 's.db'}"
    reader = keyshelf.open(url, cache="memory", cache_ttl=5, clock=clock)
    writer = keyshelf.open(url, clock=clock)
    writer.set("k", 1)
    assert reader.get("k") == 1 and reader.get("absent") is None
    writer.set("k", 2)
    writer.set("absent", "now here")
    # Within the staleness bound the reader may serve what it cached...
    clock.advance(4.9)
    assert reader.get("k") == 1 and reader.get("absent") is None
    # ...and never beyond it.
    clock.advance(0.2)
    assert reader.get("k") == 2 and reader.get("absent") == "now here"
    # Listings never come from the cache.
    writer.set("new", 3)
    assert reader.keys() == ["absent", "k", "new"]


def test_expired_keys_are_never_served_from_the_cache() -> None:
    clock = FakeClock()
    kv, backend = cached(clock=clock, cache_ttl=3600)
    kv.set("session", "abc", ttl=1)
    assert kv.get("session") == "abc"
    calls = backend.total()
    clock.advance(1.001)  # the expiry instant (rounded up to the ms) has passed
    assert kv.get("session") is None
    assert kv.exists("session") is False
    assert kv.get_many(["session"]) == {}
    assert backend.total() == calls  # answered by the cache, which knows the expiry
    assert kv.ttl("session") == -1  # ttl() asks the backend, which agrees


def test_clock_going_backwards_is_a_miss() -> None:
    clock = FakeClock()
    kv, backend = cached(clock=clock)
    kv.set("k", 1)
    kv.get("k")
    clock.advance(-10)
    kv.get("k")
    assert backend.calls["get_record"] == 2


def test_a_read_in_flight_during_a_write_is_not_cached() -> None:
    cache = RecordCache(CacheConfig(ttl=60, size=10))
    old = Record("i", 1, None, None, 0, 0, 1)
    ticket = cache.ticket("ns", "k")  # a read starts
    cache.invalidate("ns", ["k"])  # a write completes meanwhile
    cache.fill("ns", "k", old, 0, ticket)  # the read comes back with the old record
    assert cache.lookup("ns", "k", 1) == (False, None)
    ticket = cache.ticket("ns", "k")
    cache.invalidate_matching("other", None)  # pattern writes anywhere are conservative
    cache.fill("ns", "k", old, 0, ticket)
    assert cache.lookup("ns", "k", 1) == (False, None)
    cache.fill("ns", "k", old, 0, cache.ticket("ns", "k"))
    assert cache.lookup("ns", "k", 1) == (True, old)


def test_threads_never_read_their_own_store_stale(tmp_path: Path) -> None:
    # The clock never moves, so one stale fill would be served forever.
    kv = keyshelf.open(tmp_path / "t.db", cache="memory", clock=FakeClock())
    kv.set("n", 0)
    done = threading.Event()
    stale: list[int] = []

    def writer() -> None:
        for _ in range(300):
            kv.increment("n")
        done.set()

    def reader() -> None:
        while not done.is_set():
            kv.get("n")
        stale.append(kv.get("n"))

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stale == [300, 300, 300] and kv.get("n") == 300


# -- options --------------------------------------------------------------------------------


def test_options_and_url_parameters() -> None:
    for options in ({"cache": True}, {"cache": "memory"}, {"cache": "MEMORY"}):
        with keyshelf.open("memory://", **options) as kv:
            cache = kv.backend.cache
            assert (cache.size, cache.ttl_ms) == (1000, 60_000)
    with keyshelf.open("memory://?cache=memory&cache_ttl=2.5&cache_size=10") as kv:
        assert (kv.backend.cache.size, kv.backend.cache.ttl_ms) == (10, 2500)
    for off in (
        {"cache": False},
        {"cache": "none"},
        {"cache": None},
        {"cache": False, "cache_ttl": 3},
    ):
        with keyshelf.open("memory://", **off) as kv:
            assert not isinstance(kv.backend, CachedBackend)
    bad: list[dict[str, Any]] = [
        {"cache": "redis"},
        {"cache": 1},
        {"cache_ttl": 5},
        {"cache_size": 5},
        {"cache": True, "cache_ttl": 0},
        {"cache": True, "cache_ttl": "soon"},
        {"cache": True, "cache_size": 0},
        {"cache": True, "cache_size": 1.5},
    ]
    for options in bad:
        with pytest.raises(keyshelf.InvalidURLError):
            keyshelf.open("memory://", **options)


def test_async_api() -> None:
    async def main() -> None:
        clock = FakeClock()
        async with keyshelf.open_async("memory://", cache="memory", clock=clock) as kv:
            assert isinstance(kv.backend, AsyncCachedBackend)
            await kv.set("k", [1], ttl=1)
            assert await kv.get("k") == [1]
            assert await kv.get("k") == [1]
            assert kv.backend.cache.hits == 1
            await kv.increment("n")
            assert await kv.get("n") == 1
            await kv.increment("n")
            assert await kv.get("n") == 2
            clock.advance(1.001)
            assert await kv.get("k") is None

    asyncio.run(main())


@pytest.mark.parametrize("name", STORAGE)
def test_every_backend_behind_the_cache(name: str, tmp_path: Path) -> None:
    with store_on(name, tmp_path, "c", cache="memory") as kv:
        backend = kv.backend
        counting = Counting(backend.inner)
        backend.inner = counting
        kv.set("k", {"v": 1}, ttl=60)
        assert kv.get("k") == {"v": 1}
        reads = counting.total()
        assert kv.get("k") == {"v": 1} and kv.exists("k")
        assert counting.total() == reads
        kv.set("k", {"v": 2})
        assert kv.get("k") == {"v": 2} and kv.ttl("k") is None


@pytest.mark.parametrize("name", [name for name in STORAGE if name != "memory"])
def test_ttl_asks_the_backend_not_the_cache(name: str, tmp_path: Path) -> None:
    # ttl() must come from the clock that expires the key and see another
    # writer's expire()/persist() at once, while get() may still be cached.
    with BACKENDS[name][0](tmp_path) as (url, options):
        cached = keyshelf.open(url, **options, cache="memory", cache_ttl=600)
        other = keyshelf.open(url, **options)
        try:
            cached.set("k", "v")
            assert cached.get("k") == "v" and cached.ttl("k") is None
            other.expire("k", 100)
            assert 99_000 <= cached.ttl("k") * 1000 <= 100_000
            assert cached.get("k") == "v"
            other.persist("k")
            assert cached.ttl("k") is None
            other.delete("k")
            assert cached.ttl("k") == -1
        finally:
            other.close()
            cached.close()
