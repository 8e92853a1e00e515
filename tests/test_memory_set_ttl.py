"""The memory backend's fast set with a TTL, and the shortcuts it takes.

A rewrite that keeps or extends a key's expiry pushes no entry on the expiry
heap (the entry of the earlier expiry stays, and the purge moves it when it
comes due); the codec's plain-dict walk leaves the type of dict keys to
orjson. These tests pin each shortcut to what the full rules give.
"""

from __future__ import annotations

from typing import Any

import pytest

import keyshelf
from keyshelf.backends.memory import _EXPIRIES_FLOOR, MemoryBackend
from keyshelf.codec import FAST_DEPTH, TAG_EXT, TAG_JSON, Codec
from keyshelf.errors import InvalidKeyError, SerializationError


def _open(clock: list[float], **options: Any) -> tuple[Any, MemoryBackend]:
    kv = keyshelf.open("memory://", clock=lambda: clock[0], **options)
    backend = kv._backend
    assert isinstance(backend, MemoryBackend)
    return kv, backend


def _purge(backend: MemoryBackend, clock: list[float], ns: str | None = None) -> int:
    return backend.purge_expired(ns, int(clock[0] * 1000))


def test_refreshed_keys_add_no_heap_entries_and_expire_at_their_last_ttl() -> None:
    clock = [1000.0]
    kv, backend = _open(clock)
    for _ in range(50):  # sessions refreshed on every request
        for i in range(100):
            kv.set(f"s{i}", {"n": i}, ttl=60)
        clock[0] += 0.5
    assert len(backend._expiries) == 100  # one entry per key, none per rewrite
    # 60 s after the first writes, before the last ones expire: nothing goes.
    clock[0] = 1000.0 + 61
    assert _purge(backend, clock) == 0
    assert len(kv.keys()) == 100
    assert len(backend._expiries) == 100  # each entry moved to its key's expiry
    clock[0] = 1000.0 + 25 + 61  # after the last writes' expiry
    assert _purge(backend, clock) == 100
    assert kv.keys() == []
    assert backend._data["default"].records == {}


def test_a_shortened_ttl_is_purged_at_the_shorter_expiry() -> None:
    clock = [1000.0]
    kv, backend = _open(clock)
    kv.set("k", 1, ttl=100)
    kv.set("k", 2, ttl=10)
    clock[0] += 20
    assert _purge(backend, clock) == 1
    assert "k" not in backend._data["default"].records


def test_keep_ttl_and_a_persisting_set() -> None:
    clock = [1000.0]
    kv, backend = _open(clock)
    kv.set("kept", 1, ttl=10)
    kv.set("kept", 2, keep_ttl=True)
    kv.set("persisted", 1, ttl=10)
    kv.set("persisted", 2)
    clock[0] += 20
    assert _purge(backend, clock) == 1
    assert kv.keys() == ["persisted"]
    assert kv.get("persisted") == 2


def test_an_expired_key_written_again_with_a_later_ttl() -> None:
    clock = [1000.0]
    kv, backend = _open(clock)
    kv.set("k", 1, ttl=1)
    clock[0] += 5  # expired, still stored
    kv.set("k", 2, ttl=10)
    assert backend.get_record("default", "k", int(clock[0] * 1000)).version == 1  # afresh
    clock[0] += 5  # past the first expiry, before the second
    assert _purge(backend, clock) == 0
    assert kv.get("k") == 2
    clock[0] += 10
    assert _purge(backend, clock) == 1
    assert kv.get("k") is None


def test_purging_one_namespace_keeps_the_others_entries() -> None:
    clock = [1000.0]
    kv, backend = _open(clock)
    a, b = kv.namespace("a"), kv.namespace("b")
    for view in (a, b):
        view.set("k", 1, ttl=10)
    clock[0] += 5
    for view in (a, b):
        view.set("k", 2, ttl=10)  # refreshed: the entries still say 1010 s
    clock[0] += 7  # past the first expiry, before the refreshed one
    assert a.delete_expired() == 0
    assert b.delete_expired() == 0
    clock[0] += 5
    assert a.delete_expired() == 1
    assert b.get("k") is None  # expired: invisible, not yet removed
    assert "k" in backend._data["b"].records
    assert _purge(backend, clock) == 1
    assert "k" not in backend._data["b"].records


def test_the_feed_records_one_expire_at_the_last_ttl() -> None:
    clock = [1000.0]
    kv, backend = _open(clock, history=100)
    kv.set("k", 1, ttl=10)
    clock[0] += 5
    kv.set("k", 2, ttl=10)
    clock[0] += 7
    assert _purge(backend, clock) == 0
    clock[0] += 5
    assert _purge(backend, clock) == 1
    now = int(clock[0] * 1000)
    types = [change.type for change in backend.changes("default", 0, 100, now)]
    assert types == ["set", "set", "expire"]


def test_compaction_keeps_one_entry_per_key_at_its_expiry() -> None:
    clock = [1000.0]
    kv, backend = _open(clock)
    # Each write shortens the TTL: each pushes an entry, compaction drops the stale.
    for i in range(3 * _EXPIRIES_FLOOR):
        kv.set(f"k{i % 10}", i, ttl=20_000 - i)
    assert len(backend._expiries) <= 2 * _EXPIRIES_FLOOR
    kv.set("k0", "refreshed", ttl=30_000)  # later: no entry of its own
    clock[0] += 9_000
    assert _purge(backend, clock) == 9
    assert kv.keys() == ["k0"]
    clock[0] += 30_000
    assert _purge(backend, clock) == 1


def test_a_bounded_store_purges_refreshed_keys() -> None:
    clock = [1000.0]
    kv = keyshelf.open("memory://?max_keys=50", clock=lambda: clock[0])
    backend = kv._backend
    for _ in range(3):
        for i in range(80):  # more keys than the bound: the oldest are evicted
            kv.set(f"s{i}", i, ttl=60)
        clock[0] += 1
    live = len(kv.keys())
    assert 0 < live <= 50  # the last round's most recent writes
    clock[0] += 58.5  # past the first round's expiries only
    assert backend.purge_expired(None, int(clock[0] * 1000)) == 0
    assert len(kv.keys()) == live
    clock[0] += 5
    assert backend.purge_expired(None, int(clock[0] * 1000)) == live
    assert kv.keys() == []


def test_the_inlined_clock_rounds_down_as_now_ms() -> None:
    clock = [1000.0009]
    kv, backend = _open(clock)
    kv.set("k", 1, ttl=1)
    record = backend.get_record("default", "k", 1_000_000)
    assert record is not None
    assert record.expires_at == 1_001_000  # floor(1000000.9) + 1000


class _Text(str):
    pass


def test_a_str_subclass_key_is_refused_after_the_equal_str_was_cached() -> None:
    kv = keyshelf.open("memory://")
    kv.set("user:1", 1)
    with pytest.raises(InvalidKeyError):
        kv.set(_Text("user:1"), 2)
    assert kv.get("user:1") == 1


def _nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = {"a": leaf}
    return leaf


@pytest.mark.parametrize(
    ("value", "tag", "payload"),
    [
        ({"a": {1: 2}}, TAG_EXT, b'{"a":{"$map":[[1,2]]}}'),
        ({"a": [1, {True: 3}]}, TAG_EXT, b'{"a":[1,{"$map":[[true,3]]}]}'),
        ({"a": {None: 1, "b": 2}}, TAG_EXT, b'{"a":{"$map":[[null,1],["b",2]]}}'),
        ({"a": {(1, 2): 1}}, TAG_EXT, b'{"a":{"$map":[[{"$tuple":[1,2]},1]]}}'),
        ({"a": {"$x": 1}}, TAG_EXT, b'{"a":{"$map":[["$x",1]]}}'),
        ({"a": {"$x": 1, "b": 2}}, TAG_JSON, b'{"a":{"$x":1,"b":2}}'),
        ({"a": ["x", "y", 3]}, TAG_JSON, b'{"a":["x","y",3]}'),
        ({"a": ["x", ("t",)]}, TAG_EXT, b'{"a":["x",{"$tuple":["t"]}]}'),
        ({"a": ["x", 2**64]}, TAG_EXT, b'{"a":["x",{"$int":"18446744073709551616"}]}'),
        ({"a": ["x", float("nan")]}, TAG_EXT, b'{"a":["x",{"$float":"nan"}]}'),
        ({"a": []}, TAG_JSON, b'{"a":[]}'),
    ],
)
def test_dict_keys_and_lists_take_the_full_rules(value: Any, tag: str, payload: bytes) -> None:
    codec = Codec()
    assert codec.encode(value) == (tag, payload)
    assert repr(codec.decode(tag, payload)) == repr(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {_Text("k"): 1}}, r"_Text at \['a'\] \(in a dict key\)"),
        ({_Text("k"): 1}, r"_Text \(in a dict key\)"),
        ({"a": {"\ud800": 1}}, r"lone surrogate at \['a'\] \(in a dict key\)"),
        ({"a": ["s", _Text("t")]}, r"_Text at \['a'\]\[1\]"),
        ({1: object()}, r"object at \[1\]"),
    ],
)
def test_refusals_are_unchanged(value: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        Codec().encode(value)


@pytest.mark.parametrize("depth", [FAST_DEPTH - 3, FAST_DEPTH - 2, FAST_DEPTH - 1, FAST_DEPTH])
@pytest.mark.parametrize("leaf", [["x", "y"], [], [1], {1: "a"}])
def test_lists_at_the_depth_limit_round_trip(depth: int, leaf: Any) -> None:
    codec = Codec()
    value = _nested(depth, leaf)
    tag, payload = codec.encode(value)
    assert tag == (TAG_EXT if isinstance(leaf, dict) else TAG_JSON)
    assert codec.decode(tag, payload) == value
