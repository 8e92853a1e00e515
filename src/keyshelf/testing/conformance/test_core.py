"""The core operations of cinchdb's KV store (docs/semantics.md).

get/set/delete/exists/mset/mget/ttl/expire/persist/setnx.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

import keyshelf


def test_get_missing_returns_default(kv: Any) -> None:
    assert kv.get("missing") is None
    assert kv.get("missing", "fallback") == "fallback"


def test_set_returns_true_and_get_returns_value(kv: Any) -> None:
    assert kv.set("user:123", {"name": "Alice", "role": "admin"}) is True
    assert kv.get("user:123") == {"name": "Alice", "role": "admin"}


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        42,
        -7,
        2**63 - 1,
        -(2**63),
        2**80,
        -(2**100),
        3.0,
        3.14,
        -0.0,
        float("inf"),
        float("-inf"),
        "",
        "Hello World",
        "émoji 🚀",
        b"",
        b"raw bytes\x00\xff",
        [],
        {},
        [1, "a", None, True, 2.5],
        {"nested": {"data": [1, 2, 3]}},
        (1, 2, (3, b"x")),
        {1, 2, 3},
        frozenset({"a"}),
        {1: "int key", (1, 2): "tuple key"},
        {"$set": [1]},
    ],
    ids=repr,
)
def test_values_round_trip_exactly(kv: Any, value: Any) -> None:
    kv.set("k", value)
    got = kv.get("k")
    assert type(got) is type(value)
    if isinstance(value, float) and value == 0:
        assert math.copysign(1, got) == math.copysign(1, value)
    assert got == value
    assert repr(got) == repr(value)


def test_nan_round_trips(kv: Any) -> None:
    kv.set("nan", float("nan"))
    got = kv.get("nan")
    assert type(got) is float and math.isnan(got)


def test_bool_is_not_int(kv: Any) -> None:
    kv.set("bool", True)
    kv.set("int", 42)
    kv.set("float", 3.14)
    assert kv.get("bool") is True
    assert type(kv.get("int")) is int
    assert type(kv.get("float")) is float


def test_bytearray_and_memoryview_come_back_as_bytes(kv: Any) -> None:
    kv.set("a", bytearray(b"abc"))
    kv.set("m", memoryview(b"xyz"))
    assert kv.get("a") == b"abc" and type(kv.get("a")) is bytes
    assert kv.get("m") == b"xyz" and type(kv.get("m")) is bytes


def test_none_value_is_distinct_from_missing(kv: Any) -> None:
    kv.set("nothing", None)
    assert kv.exists("nothing") is True
    assert kv.get("nothing", "default") is None
    assert kv.exists("missing") is False


def test_mutating_values_does_not_change_the_store(kv: Any) -> None:
    value = {"list": [1, 2]}
    kv.set("k", value)
    value["list"].append(3)
    assert kv.get("k") == {"list": [1, 2]}
    got = kv.get("k")
    got["list"].append(4)
    assert kv.get("k") == {"list": [1, 2]}


def test_overwrite_replaces_value_and_type(kv: Any) -> None:
    kv.set("k", 1)
    kv.set("k", "one")
    assert kv.get("k") == "one"


def test_delete_counts_live_keys(kv: Any) -> None:
    kv.mset({"key1": 1, "key2": 2})
    assert kv.delete("key1", "key2", "key3") == 2
    assert kv.delete("key1") == 0
    assert kv.get("key1") is None


def test_delete_duplicate_keys_counts_once(kv: Any) -> None:
    kv.set("a", 1)
    assert kv.delete("a", "a") == 1


def test_delete_from_list(kv: Any) -> None:
    kv.mset({"temp1": 1, "temp2": 2, "temp3": 3})
    keys_to_delete = ["temp1", "temp2", "temp3"]
    assert kv.delete(*keys_to_delete) == 3


def test_exists(kv: Any) -> None:
    assert kv.exists("k") is False
    kv.set("k", 0)
    assert kv.exists("k") is True


def test_mset_then_mget(kv: Any) -> None:
    assert (
        kv.mset(
            {
                "config:debug": True,
                "config:timeout": 30,
                "config:api_url": "https://api.example.com",
                "config:features": ["auth", "api", "webhooks"],
            }
        )
        is True
    )
    configs = kv.mget(["config:debug", "config:timeout", "config:api_url"])
    assert configs == {
        "config:debug": True,
        "config:timeout": 30,
        "config:api_url": "https://api.example.com",
    }
    assert list(configs) == ["config:debug", "config:timeout", "config:api_url"]


def test_mget_missing_raises_with_message(kv: Any) -> None:
    kv.set("exists", 1)
    with pytest.raises(ValueError) as info:
        kv.mget(["exists", "missing"])
    assert str(info.value) == "Keys not found: ['missing']"
    assert isinstance(info.value, keyshelf.KeysNotFoundError)


def test_mset_with_shared_ttl(kv: Any) -> None:
    kv.mset({"cache:user:1": 1, "cache:user:2": 2}, ttl=300)
    for key in ("cache:user:1", "cache:user:2"):
        remaining = kv.ttl(key)
        assert 299 < remaining <= 300.001


def test_mset_empty_is_true(kv: Any) -> None:
    assert kv.mset({}) is True
    assert kv.size() == 0


def test_mset_is_all_or_nothing_on_bad_value(kv: Any) -> None:
    kv.set("a", "old")
    with pytest.raises(keyshelf.SerializationError):
        kv.mset({"a": "new", "b": object()})
    assert kv.get("a") == "old"
    assert kv.exists("b") is False


def test_setnx_only_sets_absent(kv: Any) -> None:
    assert kv.setnx("lock:resource", "locked", ttl=30) is True
    assert kv.setnx("lock:resource", "other") is False
    assert kv.get("lock:resource") == "locked"
    assert kv.delete("lock:resource") == 1
    assert kv.setnx("lock:resource", "again") is True


def test_set_nx_xx(kv: Any) -> None:
    assert kv.set("k", 1, xx=True) is False
    assert kv.exists("k") is False
    assert kv.set("k", 1, nx=True) is True
    assert kv.set("k", 2, nx=True) is False
    assert kv.set("k", 3, xx=True) is True
    assert kv.get("k") == 3


def test_set_nx_and_xx_together_is_refused(kv: Any) -> None:
    with pytest.raises(ValueError):
        kv.set("k", 1, nx=True, xx=True)
    assert kv.exists("k") is False


def test_ttl_values(kv: Any) -> None:
    kv.set("temp_data", "value", ttl=300)
    remaining = kv.ttl("temp_data")
    assert isinstance(remaining, float)
    assert 299 < remaining <= 300.001
    kv.set("permanent_key", "value")
    assert kv.ttl("permanent_key") is None
    assert kv.ttl("missing") == -1


def test_ttl_accepts_timedelta(kv: Any) -> None:
    kv.set("cache", "data", ttl=timedelta(minutes=15))
    assert 899 < kv.ttl("cache") <= 900.001


def test_subsecond_ttl_precision(kv: Any) -> None:
    kv.set("k", 1, ttl=1.5)
    assert 1.4 < kv.ttl("k") <= 1.501


def test_plain_set_replaces_ttl(kv: Any) -> None:
    kv.set("k", 1, ttl=100)
    kv.set("k", 2)
    assert kv.ttl("k") is None


def test_keep_ttl(kv: Any) -> None:
    kv.set("k", 1, ttl=100)
    kv.set("k", 2, keep_ttl=True)
    assert kv.get("k") == 2
    assert 99 < kv.ttl("k") <= 100.001


def test_keep_ttl_with_ttl_is_refused(kv: Any) -> None:
    kv.set("k", 1, ttl=100)
    with pytest.raises(ValueError):
        kv.set("k", 2, ttl=5, keep_ttl=True)
    assert kv.get("k") == 1


def test_expire_and_persist(kv: Any) -> None:
    assert kv.expire("missing", 10) is False
    kv.set("important_data", "v")
    assert kv.expire("important_data", 86400) is True
    assert 86399 < kv.ttl("important_data") <= 86400.001
    assert kv.persist("important_data") is True
    assert kv.ttl("important_data") is None
    assert kv.persist("important_data") is False
    assert kv.persist("missing") is False


def test_expired_key_is_invisible_everywhere(kv: Any, clock: Any) -> None:
    kv.set("session:abc", {"user_id": 123}, ttl=0.2)
    kv.set("keep", 1)
    clock.advance(0.3)
    assert kv.get("session:abc") is None
    assert kv.exists("session:abc") is False
    assert kv.ttl("session:abc") == -1
    assert kv.keys() == ["keep"]
    assert kv.key_count() == 1
    assert kv.size() == 1
    assert kv.get_many(["session:abc"]) == {}
    assert kv.get_pattern("session:*") == {}
    assert kv.storage_size("session:abc") == {}
    assert kv.expire("session:abc", 10) is False
    assert kv.persist("session:abc") is False
    assert kv.delete("session:abc") == 0
    assert kv.dump() == {"keep": 1}
    assert kv.compare_and_swap("session:abc", {"user_id": 123}, 1) is False
    with pytest.raises(keyshelf.KeysNotFoundError):
        kv.mget(["session:abc"])


def test_expired_key_treated_as_missing_by_atomics(kv: Any, clock: Any) -> None:
    kv.set("counter", 10, ttl=0.2)
    kv.set("text", "abc", ttl=0.2)
    kv.set("lock", "x", ttl=0.2)
    clock.advance(0.3)
    assert kv.increment("counter") == 1
    assert kv.ttl("counter") is None
    assert kv.append("text", "d") == "d"
    assert kv.setnx("lock", "y") is True
    assert kv.get("lock") == "y"


def test_expire_then_time_passes(kv: Any, clock: Any) -> None:
    kv.set("k", 1)
    kv.expire("k", 0.2)
    clock.advance(0.3)
    assert kv.exists("k") is False


def test_delete_expired(kv: Any, clock: Any) -> None:
    kv.set("a", 1, ttl=0.2)
    kv.set("b", 2, ttl=0.2)
    kv.set("c", 3)
    clock.advance(0.3)
    removed = kv.delete_expired()
    # A backend that purges by itself (Redis) may have removed them already.
    assert removed in (0, 1, 2) if clock.self_purging else removed == 2
    assert kv.delete_expired() == 0
    assert kv.cleanup_expired() == 0
    assert kv.keys() == ["c"]


def test_storage_size(kv: Any) -> None:
    assert kv.storage_size() == {"total": 0}
    kv.set("large_key1", b"x" * 5120)
    kv.set("large_key2", "y" * 3072)
    kv.set("n", 7)
    assert kv.storage_size("large_key1", "large_key2", "missing") == {
        "large_key1": 5120,
        "large_key2": 3072,
    }
    assert kv.storage_size() == {"total": 5120 + 3072 + 8}
