"""get_or_set and memoize: computing a missing value once, on every backend, both APIs.

These tests check the behaviour one caller sees (hits, misses, TTLs, errors,
staleness, cache keys); the stampede tests with real threads, tasks and
processes are keyshelf's own (``tests/reliability/test_stampede.py``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

import keyshelf
from keyshelf.compute import FRESH_UNTIL, RELEASED, lease_key


class Counter:
    """A factory that counts its runs; async on the async API."""

    def __init__(self, api: str, values: list[Any] | None = None) -> None:
        self.runs = 0
        self.values = values
        self.api = api

    def next(self) -> Any:
        self.runs += 1
        return self.values[self.runs - 1] if self.values is not None else f"v{self.runs}"

    def factory(self) -> Any:
        if self.api == "async":

            async def produce() -> Any:
                return self.next()

            return produce
        return self.next


def api_of(kv: Any) -> str:
    """``"async"`` for a store driven through the async API, else ``"sync"``."""
    return str(getattr(kv, "api", "sync"))


def run(kv: Any, result: Any) -> Any:
    """The value of a memoized call: awaited on the store's loop for the async API."""
    if inspect.iscoroutine(result):
        return kv._loop.run_until_complete(result)
    return result


def memoized(kv: Any, function: Any, **options: Any) -> Any:
    """``kv.memoize(**options)`` applied to ``function``, made async for the async API."""
    if api_of(kv) == "async":

        @functools.wraps(function)
        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        return kv.memoize(**options)(coroutine)
    return kv.memoize(**options)(function)


def test_get_or_set_computes_a_miss_once_then_hits(kv: Any) -> None:
    counter = Counter(api_of(kv))
    assert kv.get_or_set("page:1", counter.factory()) == "v1"
    assert kv.get_or_set("page:1", counter.factory()) == "v1"
    assert counter.runs == 1
    # Stored as a plain value: a plain get (or another program) reads it as is.
    assert kv.get("page:1") == "v1"
    assert kv.ttl("page:1") is None


def test_get_or_set_returns_an_existing_value_without_running(kv: Any) -> None:
    kv.set("k", {"a": [1, 2]})
    counter = Counter(api_of(kv))
    assert kv.get_or_set("k", counter.factory()) == {"a": [1, 2]}
    assert counter.runs == 0


def test_get_or_set_a_stored_none_is_a_hit(kv: Any) -> None:
    counter = Counter(api_of(kv), values=[None, "again"])
    assert kv.get_or_set("nothing", counter.factory()) is None
    assert kv.get_or_set("nothing", counter.factory()) is None
    assert counter.runs == 1
    assert kv.exists("nothing")


def test_get_or_set_applies_the_ttl(kv: Any) -> None:
    counter = Counter(api_of(kv))
    kv.get_or_set("t", counter.factory(), ttl=60)
    assert 0 < kv.ttl("t") <= 60


def test_get_or_set_accepts_a_plain_function_on_both_apis(kv: Any) -> None:
    assert kv.get_or_set("plain", lambda: [1, (2, 3)]) == [1, (2, 3)]
    assert kv.get("plain") == [1, (2, 3)]


def test_get_or_set_factory_error_propagates_and_stores_nothing(kv: Any) -> None:
    def boom() -> Any:
        raise LookupError("upstream down")

    with pytest.raises(LookupError, match="upstream down"):
        kv.get_or_set("k", boom)
    assert not kv.exists("k")
    # The lease is released, not left to expire: the next caller computes at
    # once (a held lease would make it wait lock_ttl seconds).
    assert kv.get(lease_key("k")) == RELEASED
    counter = Counter(api_of(kv))
    assert kv.get_or_set("k", counter.factory()) == "v1"
    assert counter.runs == 1


def test_get_or_set_lease_is_visible_then_released(kv: Any) -> None:
    seen: list[Any] = []

    def factory() -> str:
        seen.append(kv.get(lease_key("job")) if api_of(kv) == "sync" else "skip")
        return "done"

    assert kv.get_or_set("job", factory, lock_ttl=20) == "done"
    if api_of(kv) == "sync":  # the driver's loop is busy inside the async factory
        assert seen[0] not in (None, RELEASED)  # held while the factory ran
    assert kv.get(lease_key("job")) == RELEASED
    assert 0 < kv.ttl(lease_key("job")) <= 20  # it expires by itself
    assert lease_key("job") == "keyshelf-lease:job"


def test_get_or_set_held_lease_makes_a_stale_value_served(kv: Any) -> None:
    # A value past its freshness (the mark is in the past) while another
    # caller holds the lease: served stale at once, the factory does not run.
    kv.set("report", "old", ttl=300, metadata={FRESH_UNTIL: 1})
    assert kv.setnx(lease_key("report"), "someone-else", ttl=60)
    counter = Counter(api_of(kv))
    assert kv.get_or_set("report", counter.factory(), ttl=10, stale_ttl=60) == "old"
    assert counter.runs == 0
    assert kv.get("report") == "old"


def test_get_or_set_refreshes_a_stale_value(kv: Any) -> None:
    kv.set("report", "old", ttl=300, metadata={FRESH_UNTIL: 1})
    counter = Counter(api_of(kv))
    assert kv.get_or_set("report", counter.factory(), ttl=10, stale_ttl=60) == "v1"
    assert counter.runs == 1
    # A plain get returns the plain value; the freshness mark is metadata.
    assert kv.get("report") == "v1"
    mark = kv.get_metadata("report")[FRESH_UNTIL]
    assert type(mark) is int
    assert 10 < kv.ttl("report") <= 70
    # Fresh now: a hit.
    assert kv.get_or_set("report", counter.factory(), ttl=10, stale_ttl=60) == "v1"
    assert counter.runs == 1


def test_get_or_set_value_without_mark_is_fresh(kv: Any) -> None:
    kv.set("plain", "mine")
    counter = Counter(api_of(kv))
    assert kv.get_or_set("plain", counter.factory(), ttl=10, stale_ttl=60) == "mine"
    assert counter.runs == 0


def test_get_or_set_refuses_bad_arguments_and_changes_nothing(kv: Any) -> None:
    counter = Counter(api_of(kv))
    with pytest.raises(keyshelf.InvalidKeyError):
        kv.get_or_set("__k", counter.factory())
    with pytest.raises(keyshelf.InvalidArgumentError):
        kv.get_or_set("k", "not callable")
    with pytest.raises(keyshelf.InvalidArgumentError, match="stale_ttl needs a ttl"):
        kv.get_or_set("k", counter.factory(), stale_ttl=5)
    with pytest.raises(keyshelf.InvalidTTLError):
        kv.get_or_set("k", counter.factory(), lock_ttl=0)
    with pytest.raises(keyshelf.InvalidTTLError):
        kv.get_or_set("k", counter.factory(), ttl=-1)
    assert counter.runs == 0
    assert kv.keys() == []


def test_get_or_set_unstorable_value_raises_and_releases(kv: Any) -> None:
    with pytest.raises(keyshelf.SerializationError):
        kv.get_or_set("k", object)
    assert not kv.exists("k")
    assert kv.get(lease_key("k")) == RELEASED


def test_memoize_caches_per_arguments(kv: Any) -> None:
    calls: list[Any] = []

    def square(x: Any, *, scale: int = 1) -> Any:
        calls.append(x)
        return x * x * scale

    cached = memoized(kv, square, ttl=60)
    assert run(kv, cached(3)) == 9
    assert run(kv, cached(3)) == 9
    assert run(kv, cached(4)) == 16
    assert run(kv, cached(3, scale=2)) == 18
    assert calls == [3, 4, 3]
    key = cached.cache_key(3)
    assert key.startswith(f"memoize:{square.__module__}.{square.__qualname__}:")
    assert kv.get(key) == 9
    assert 0 < kv.ttl(key) <= 60


def test_memoize_keys_are_typed_only_when_asked(kv: Any) -> None:
    def ident(x: Any) -> Any:
        return x

    loose = memoized(kv, ident)
    assert loose.cache_key(1) == loose.cache_key(1.0) == loose.cache_key(True)
    assert loose.cache_key((1, [2.0])) == loose.cache_key((True, [2]))
    assert loose.cache_key(1.5) != loose.cache_key(1)
    assert loose.cache_key("1") != loose.cache_key(1)
    strict = memoized(kv, ident, typed=True)
    assert len({strict.cache_key(1), strict.cache_key(1.0), strict.cache_key(True)}) == 3
    # Positional and keyword calls, and argument containers, never collide.
    assert loose.cache_key((1,), [("x", 2)]) != loose.cache_key(1, x=2)
    assert loose.cache_key(a=1, b=2) == loose.cache_key(b=2, a=1)
    assert run(kv, loose(1)) == 1
    assert run(kv, loose(True)) == 1  # shared with 1, as in functools.lru_cache


def test_memoize_invalidate_forgets_one_call(kv: Any) -> None:
    counter = Counter("sync")

    def produce(n: int) -> Any:
        return (n, counter.next())

    cached = memoized(kv, produce)
    assert run(kv, cached(1)) == (1, "v1")
    assert run(kv, cached(2)) == (2, "v2")
    assert run(kv, cached.invalidate(1)) is True
    assert run(kv, cached.invalidate(1)) is False
    assert run(kv, cached(1)) == (1, "v3")
    assert run(kv, cached(2)) == (2, "v2")


def test_memoize_custom_key(kv: Any) -> None:
    def user(uid: int) -> str:
        return f"user-{uid}"

    cached = memoized(kv, user, key=lambda uid: f"user:{uid}")
    assert run(kv, cached(7)) == "user-7"
    assert cached.cache_key(7) == "user:7"
    assert kv.get("user:7") == "user-7"
    bad = memoized(kv, user, key=lambda uid: uid)
    with pytest.raises(keyshelf.InvalidArgumentError, match="must return a str"):
        run(kv, bad(7))


def test_memoize_refuses_arguments_without_a_stable_key(kv: Any) -> None:
    calls: list[Any] = []

    def f(x: Any) -> Any:
        calls.append(x)
        return 1

    cached = memoized(kv, f)
    with pytest.raises(keyshelf.SerializationError, match="stable cache key"):
        run(kv, cached(object()))
    assert calls == []
    assert kv.keys() == []


def test_memoize_refuses_the_wrong_kind_of_function(kv: Any) -> None:
    if api_of(kv) == "async":

        def plain() -> int:
            return 1

        with pytest.raises(keyshelf.InvalidArgumentError, match="async def"):
            kv.memoize()(plain)
    else:

        async def coroutine() -> int:
            return 1

        with pytest.raises(keyshelf.InvalidArgumentError, match="plain functions"):
            kv.memoize()(coroutine)
    with pytest.raises(keyshelf.InvalidArgumentError):
        kv.memoize(typed="yes")
    with pytest.raises(keyshelf.InvalidArgumentError, match="stale_ttl needs a ttl"):
        kv.memoize(stale_ttl=3)


def test_memoize_without_lock_leaves_no_lease(kv: Any) -> None:
    def f(x: int) -> int:
        return x + 1

    cached = memoized(kv, f, lock=False)
    assert run(kv, cached(1)) == 2
    assert kv.keys() == [cached.cache_key(1)]


def test_memoize_lock_ttl_bounds_the_lease(kv: Any) -> None:
    def double(x: Any) -> Any:
        return 2 * x

    cached = memoized(kv, double, lock_ttl=7)
    assert run(kv, cached(21)) == 42
    lease = lease_key(cached.cache_key(21))
    assert kv.get(lease) == RELEASED
    assert 0 < kv.ttl(lease) <= 7  # the lease lived lock_ttl seconds, not the default 30
    for bad in (None, 0, -1, "soon"):
        with pytest.raises(keyshelf.KVError):
            memoized(kv, double, lock_ttl=bad)
