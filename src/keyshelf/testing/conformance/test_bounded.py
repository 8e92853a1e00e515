"""Bounded stores (``max_keys`` / ``max_bytes`` / ``eviction``), on every backend, both APIs.

A backend that bounds stores (memory and SQLite, with or without the cache
tier) must hold its limits after every write, through every write operation,
over every namespace together; evict by its policy (LRU keeps what was read
recently, LFU what was read often, FIFO neither); refuse under ``"none"``
with StoreFullError and change nothing; refuse a value larger than
``max_bytes``; and keep its limits for every store opened on the same data.
A backend that does not bound stores must refuse the options at open with
InvalidURLError naming them. Deterministic: no sleeps, no timing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import keyshelf

# Headroom is 0 below 8 keys (max_keys // 8, docs/caching.md): every eviction
# is exact here.
LIMIT = 7


def _bounded(opener: Any, **limits: Any) -> Any:
    """A store opened with ``limits``, or None if the backend refuses them (checked)."""
    try:
        return opener(**limits)
    except keyshelf.InvalidURLError as exc:
        assert any(name in str(exc) for name in limits), exc
        return None


def _later(clock: Any) -> None:
    """Move a fake clock on by 1 ms: each write and read at its own instant.

    (SQLite orders LRU and FIFO victims by the records' instants, ties by key.)
    """
    if not clock.server_clock:
        clock.advance(0.001)


def _keys_everywhere(kv: Any) -> int:
    """Every record of the store, over all namespaces (what ``max_keys`` counts)."""
    return sum(kv.namespace(ns).key_count() for ns in kv.list_namespaces())


def test_bounds_are_accepted_or_refused_by_name(opener: Any) -> None:
    for limits in ({"max_keys": 5}, {"max_bytes": 100}, {"max_keys": 5, "eviction": "none"}):
        kv = _bounded(opener, **limits)
        if kv is not None:
            stats = kv.stats()
            assert stats["evictions"] == 0
            assert all(stats[k] == v for k, v in limits.items() if k != "eviction"), stats


def test_unbounded_stats_report_no_evictions(kv: Any) -> None:
    kv.set("a", 1)
    stats = kv.stats()
    assert stats["evictions"] == 0
    assert "max_keys" not in stats and "max_bytes" not in stats


def test_the_key_limit_holds_after_every_write(opener: Any) -> None:
    kv = _bounded(opener, max_keys=LIMIT)
    if kv is None:
        return
    other = kv.namespace("other")
    writes: list[Callable[[int], Any]] = [
        lambda i: kv.set(f"s{i}", i),
        lambda i: kv.set(f"x{i}", i, nx=True),
        lambda i: kv.setnx(f"n{i}", i),
        lambda i: kv.mset({f"m{i}a": i, f"m{i}b": i}),
        lambda i: kv.set_many({f"sm{i}": i}),
        lambda i: kv.increment(f"c{i}"),
        lambda i: kv.append(f"a{i}", "x"),
        lambda i: other.set(f"o{i}", i),
        lambda i: kv.set(f"t{i}", i, ttl=3600),
        lambda i: kv.set(f"meta{i}", i, metadata={"i": i}),
    ]
    for i in range(3):
        for write in writes:
            write(i)
            assert _keys_everywhere(kv) <= LIMIT
            assert kv.stats()["max_keys"] == LIMIT
    stats = kv.stats()
    assert stats["evictions"] > 0
    assert _keys_everywhere(kv) == LIMIT


def test_the_byte_limit_holds_and_a_value_too_large_is_refused(opener: Any) -> None:
    kv = _bounded(opener, max_bytes=1000)
    if kv is None:
        return
    for i in range(40):
        kv.set(f"k{i}", b"x" * 90)
        assert kv.storage_size()["total"] <= 1000
    kv.append("k39", b"y" * 5)
    assert kv.storage_size()["total"] <= 1000
    before = kv.dump()
    with pytest.raises(keyshelf.ValueTooLargeError):
        kv.set("big", b"z" * 1001)
    with pytest.raises(keyshelf.ValueTooLargeError):
        kv.mset({"small": 1, "big": b"z" * 1001})
    assert kv.dump() == before
    assert kv.stats()["max_bytes"] == 1000 and kv.stats()["evictions"] > 0


def test_lru_keeps_recently_read_keys(opener: Any, clock: Any) -> None:
    kv = _bounded(opener, max_keys=LIMIT, eviction="lru")
    if kv is None:
        return
    read = LIMIT // 2
    for i in range(LIMIT):
        kv.set(f"k{i}", i)
        _later(clock)
    for i in range(read):
        assert kv.get(f"k{i}") == i
        _later(clock)
    for i in range(LIMIT - read):
        kv.set(f"new{i}", i)
        _later(clock)
    kept = [f"k{i}" for i in range(read)] + [f"new{i}" for i in range(LIMIT - read)]
    assert sorted(kv.keys()) == sorted(kept)


def test_lfu_keeps_frequently_read_keys(opener: Any, clock: Any) -> None:
    kv = _bounded(opener, max_keys=LIMIT, eviction="lfu")
    if kv is None:
        return
    for i in range(LIMIT):
        kv.set(f"k{i}", i)
        _later(clock)
    for _ in range(3):
        for i in range(5, LIMIT):
            assert kv.get(f"k{i}") == i
            _later(clock)
    for i in range(5):
        kv.set(f"new{i}", i)
        _later(clock)
    kept = set(kv.keys())
    assert {f"k{i}" for i in range(5, LIMIT)} <= kept
    assert len(kept) == LIMIT and "new4" in kept


def test_fifo_evicts_the_oldest_even_if_read(opener: Any, clock: Any) -> None:
    kv = _bounded(opener, max_keys=LIMIT, eviction="fifo")
    if kv is None:
        return
    last = LIMIT - 1
    for i in reversed(range(LIMIT)):  # the last key first: the oldest is not the first key
        kv.set(f"k{i}", i)
        _later(clock)
    assert kv.get(f"k{last}") == last
    kv.set(f"k{last - 1}", "overwritten: still as old as its insertion")
    _later(clock)
    kv.set("new", 1)
    _later(clock)
    kv.set("new2", 2)
    assert sorted(kv.keys()) == sorted([f"k{i}" for i in range(LIMIT - 2)] + ["new", "new2"])


def test_none_refuses_and_changes_nothing(opener: Any) -> None:
    kv = _bounded(opener, max_keys=3, max_bytes=100, eviction="none")
    if kv is None:
        return
    kv.mset({"a": 1, "b": 2, "c": 3})
    before = kv.dump()
    full = keyshelf.StoreFullError
    attempts: list[Callable[[], Any]] = [
        lambda: kv.set("d", 4),
        lambda: kv.setnx("d", 4),
        lambda: kv.mset({"a": 10, "d": 4}),
        lambda: kv.increment("d"),
        lambda: kv.append("d", "x"),
        lambda: kv.namespace("other").set("d", 4),
        lambda: kv.set("a", b"x" * 99),
    ]
    for attempt in attempts:
        with pytest.raises(full):
            attempt()
        assert kv.dump() == before
    assert isinstance(full("x"), keyshelf.KVError)
    # Writes that stay within the limits still work.
    kv.set("a", "replaced")
    kv.delete("b")
    kv.set("d", 4)
    assert kv.dump() == {"a": "replaced", "c": 3, "d": 4}
    assert kv.stats()["evictions"] == 0


def test_limits_survive_reopening_and_bind_another_store(opener: Any, clock: Any) -> None:
    first = _bounded(opener, max_keys=LIMIT, eviction="fifo")
    if first is None:
        return
    second = opener() if opener.shared else first.namespace("second")
    assert second.stats()["max_keys"] == LIMIT
    for i in range(LIMIT * 2):
        second.set(f"k{i}", i)
        _later(clock)
        assert _keys_everywhere(first) <= LIMIT
    assert sorted(second.keys()) == sorted(f"k{i}" for i in range(LIMIT, LIMIT * 2))
    assert first.stats()["evictions"] == second.stats()["evictions"] == LIMIT


def test_imports_and_multi_key_commits_respect_the_limits(
    opener: Any, tmp_path: Any, clock: Any
) -> None:
    kv = _bounded(opener, max_keys=LIMIT)
    if kv is None:
        return
    source = keyshelf.open("memory://")
    source.mset({f"imported{i:02}": i for i in range(LIMIT * 2)})
    dump = tmp_path / "dump.jsonl"
    source.export(dump)
    source.close()
    kv.import_(dump)
    assert _keys_everywhere(kv) <= LIMIT
    _later(clock)
    result = kv.atomic().set("c1", 1).set("c2", 2).increment("c3").commit()
    assert result.ok and {"c1", "c2", "c3"} <= set(kv.keys())
    assert _keys_everywhere(kv) <= LIMIT
    _later(clock)
    batch = kv.atomic()
    for i in range(LIMIT + 4):
        batch.set(f"t{i}", i)
    assert batch.commit().ok
    assert _keys_everywhere(kv) == LIMIT
    # A batch larger than the limit keeps LIMIT of its own records, nothing older.
    assert set(kv.keys()) <= {f"t{i}" for i in range(LIMIT + 4)}


def test_none_refuses_imports_and_multi_key_commits(opener: Any, tmp_path: Any) -> None:
    kv = _bounded(opener, max_keys=3, eviction="none")
    if kv is None:
        return
    kv.mset({"a": 1, "b": 2, "c": 3})
    before = kv.dump()
    source = keyshelf.open("memory://")
    source.mset({"x": 1, "y": 2})
    dump = tmp_path / "dump.jsonl"
    source.export(dump)
    source.close()
    with pytest.raises(keyshelf.StoreFullError):
        kv.import_(dump, batch_size=10)
    assert kv.dump() == before
    with pytest.raises(keyshelf.StoreFullError):
        kv.atomic().set("a", 10).set("d", 4).commit()
    assert kv.dump() == before
    with pytest.raises(keyshelf.StoreFullError):
        kv.getset("d", 4)
    assert kv.dump() == before
    assert kv.atomic().set("d", 4).delete("a").commit().ok
    assert kv.dump() == {"b": 2, "c": 3, "d": 4}
