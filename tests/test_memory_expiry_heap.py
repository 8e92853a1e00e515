"""The memory backend's expiry heap holds about one entry per key, not one per write."""

from __future__ import annotations

import keyshelf
from keyshelf.backends.memory import _EXPIRIES_FLOOR, MemoryBackend


def test_rewriting_keys_with_a_ttl_keeps_the_heap_bounded() -> None:
    clock = [1000.0]
    kv = keyshelf.open("memory://", clock=lambda: clock[0])
    backend = kv._backend
    assert isinstance(backend, MemoryBackend)
    for i in range(20 * _EXPIRIES_FLOOR):
        kv.set(f"s{i % 10}", i, ttl=60)  # a refreshed session: one key, many writes
        if i % 1000 == 0:
            kv.mset({f"m{j}": i for j in range(5)}, ttl=60)
            kv.expire("s0", 90)
    assert len(backend._expiries) <= 2 * _EXPIRIES_FLOOR
    # Every key with an expiry still has its entry: the purge finds them all.
    kv.set("forever", 1)
    clock[0] += 100
    assert backend.purge_expired(None, int(clock[0] * 1000)) == 15
    assert kv.keys() == ["forever"]


def test_compaction_keeps_expired_records_for_the_purge() -> None:
    clock = [1000.0]
    kv = keyshelf.open("memory://", clock=lambda: clock[0])
    backend = kv._backend
    assert isinstance(backend, MemoryBackend)
    kv.set("short", 1, ttl=1)
    clock[0] += 5  # "short" is expired but still stored
    for i in range(3 * _EXPIRIES_FLOOR):
        kv.set("long", i, ttl=600)
    assert len(backend._expiries) <= 2 * _EXPIRIES_FLOOR
    assert backend.purge_expired(None, int(clock[0] * 1000)) == 1
    assert "short" not in backend._data["default"].records


class _NoWalk(dict):  # type: ignore[type-arg]
    """A record dict that refuses to be walked: a compaction must not scan the store."""

    def items(self):  # type: ignore[no-untyped-def]
        raise AssertionError("the whole namespace was walked")

    def values(self):  # type: ignore[no-untyped-def]
        raise AssertionError("the whole namespace was walked")

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("the whole namespace was walked")


def test_compaction_reads_the_heap_not_the_store() -> None:
    kv = keyshelf.open("memory://")
    backend = kv._backend
    assert isinstance(backend, MemoryBackend)
    kv.mset({f"plain{i}": i for i in range(1000)})  # keys without a TTL
    table = backend._data["default"]
    table.records = _NoWalk(table.records)
    for i in range(3 * _EXPIRIES_FLOOR):
        kv.set("session", i, ttl=60)
    assert len(backend._expiries) <= 2 * _EXPIRIES_FLOOR
