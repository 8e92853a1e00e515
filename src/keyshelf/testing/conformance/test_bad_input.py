"""Bad input raises the documented error with the documented message and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import keyshelf

BAD_KEYS = [
    ("", "Key must be a non-empty string"),
    (None, "Key must be a non-empty string"),
    (123, "Key must be a non-empty string"),
    (b"bytes", "Key must be a non-empty string"),
    ("k" * 256, "Key length cannot exceed 255 characters"),
    ("__system", "Keys cannot start with '__'"),
    ("key\nwith\nnewline", "Key cannot contain newlines, tabs, or null bytes"),
    ("tab\tkey", "Key cannot contain newlines, tabs, or null bytes"),
    ("nul\0key", "Key cannot contain newlines, tabs, or null bytes"),
    ("cr\rkey", "Key cannot contain newlines, tabs, or null bytes"),
    ("bell\x07", "Key must contain only printable characters"),
    ("esc\x1b[0m", "Key must contain only printable characters"),
    ("del\x7f", "Key must contain only printable characters"),
    ("line\u2028sep", "Key must contain only printable characters"),
    ("surrogate\ud800", "Key must contain only printable characters"),
]

GOOD_KEYS = [
    "shopping cart",
    "user preferences",
    "app:module:component:key",
    "tenant/123/settings",
    "email@domain.com",
    "price_in_$USD",
    "50%_discount!",
    "status_🚀",
    "family_👨\u200d👩\u200d👧",
    "k" * 255,
    "_single",
    "a__b",
]


def snapshot(kv: Any) -> Any:
    return kv.dump(), kv.stats(), [kv.get_entry(k) for k in kv.keys()]


@pytest.fixture
def seeded(kv: Any) -> Any:
    kv.set("existing", {"v": 1}, ttl=100, metadata={"m": 1})
    kv.set("counter", 5)
    kv.set("text", "abc")
    return kv


def key_calls(key: Any) -> list[Any]:
    return [
        lambda kv: kv.get(key),
        lambda kv: kv.set(key, 1),
        lambda kv: kv.delete(key),
        lambda kv: kv.delete("counter", key),
        lambda kv: kv.exists(key),
        lambda kv: kv.mset({"counter": 99, key: 1}),
        lambda kv: kv.mget(["counter", key]),
        lambda kv: kv.increment(key),
        lambda kv: kv.decrement(key),
        lambda kv: kv.ttl(key),
        lambda kv: kv.expire(key, 10),
        lambda kv: kv.persist(key),
        lambda kv: kv.setnx(key, 1),
        lambda kv: kv.storage_size(key),
        lambda kv: kv.get_many([key]),
        lambda kv: kv.set_many({"counter": 99, key: 1}),
        lambda kv: kv.delete_many(["counter", key]),
        lambda kv: kv.compare_and_swap(key, 1, 2),
        lambda kv: kv.append(key, "x"),
        lambda kv: kv.get_metadata(key),
        lambda kv: kv.set_metadata(key, {}),
        lambda kv: kv.get_entry(key),
    ]


@pytest.mark.parametrize(("key", "message"), BAD_KEYS, ids=repr)
def test_invalid_keys_refused_everywhere(seeded: Any, key: Any, message: str) -> None:
    before = snapshot(seeded)
    for call in key_calls(key):
        with pytest.raises(keyshelf.InvalidKeyError) as info:
            call(seeded)
        assert isinstance(info.value, ValueError)
        assert message in str(info.value)
    assert snapshot(seeded) == before


@pytest.mark.parametrize("key", BAD_KEYS[:3], ids=repr)
def test_batch_message_names_the_key(seeded: Any, key: Any) -> None:
    with pytest.raises(keyshelf.InvalidKeyError) as info:
        seeded.mset({"ok": 1, key: 2})
    assert str(info.value).startswith("Invalid key")
    assert repr(key) in str(info.value)


def test_exact_single_key_messages(seeded: Any) -> None:
    for key, message in BAD_KEYS:
        with pytest.raises(ValueError) as info:
            seeded.set(key, "value")
        assert str(info.value) == message


@pytest.mark.parametrize("key", GOOD_KEYS, ids=repr)
def test_valid_keys_accepted(kv: Any, key: str) -> None:
    assert kv.set(key, "v") is True
    assert kv.get(key) == "v"
    assert kv.keys() == [key]


BAD_TTLS = [0, -1, -0.5, float("nan"), float("inf"), float("-inf"), True, False, "10", [1]]


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
def test_invalid_ttls_refused(seeded: Any, ttl: Any) -> None:
    before = snapshot(seeded)
    calls: list[Callable[[Any], Any]] = [
        lambda kv: kv.set("new", 1, ttl=ttl),
        lambda kv: kv.set("existing", 2, ttl=ttl),
        lambda kv: kv.mset({"counter": 1}, ttl=ttl),
        lambda kv: kv.expire("existing", ttl),
        lambda kv: kv.setnx("new", 1, ttl=ttl),
        lambda kv: kv.set_many({"counter": 1}, ttl=ttl),
        lambda kv: kv.set("existing", 2, metadata={"ttl": ttl}),
        lambda kv: kv.set_metadata("existing", {"ttl": ttl}),
    ]
    for call in calls:
        with pytest.raises(keyshelf.InvalidTTLError) as info:
            call(seeded)
        assert isinstance(info.value, ValueError)
        if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl <= 0:
            assert "TTL must be positive" in str(info.value)
    assert snapshot(seeded) == before


class Custom:
    pass


BAD_VALUES = [object(), Custom(), lambda: 1, 1j, {"a": object()}, [1, {2, Custom()}], {Custom(): 1}]


@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_unserializable_values_refused(seeded: Any, value: Any) -> None:
    before = snapshot(seeded)
    calls: list[Callable[[Any], Any]] = [
        lambda kv: kv.set("existing", value),
        lambda kv: kv.set("new", value),
        lambda kv: kv.mset({"counter": 1, "new": value}),
        lambda kv: kv.setnx("new", value),
        lambda kv: kv.compare_and_swap("counter", 5, value),
        lambda kv: kv.set("existing", 1, metadata={"m": value}),
        lambda kv: kv.set_metadata("existing", {"m": value}),
    ]
    for call in calls:
        with pytest.raises(keyshelf.SerializationError) as info:
            call(seeded)
        assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
        assert str(info.value).startswith("Value is not JSON serializable")
    assert snapshot(seeded) == before


def test_serialization_message_names_the_type(kv: Any) -> None:
    with pytest.raises(keyshelf.SerializationError, match="Custom"):
        kv.set("k", Custom())


def test_value_too_large(opener: Any) -> None:
    kv = opener(max_value_size=100)
    kv.set("k", "small")
    with pytest.raises(keyshelf.ValueTooLargeError) as info:
        kv.set("k", "x" * 101)
    assert isinstance(info.value, ValueError)
    with pytest.raises(keyshelf.ValueTooLargeError):
        kv.mset({"a": 1, "b": b"y" * 200})
    with pytest.raises(keyshelf.ValueTooLargeError):
        kv.append("k", "z" * 100)
    assert kv.dump() == {"k": "small"}


@pytest.mark.parametrize("pattern", [None, 1, b"*", ["*"]], ids=repr)
def test_invalid_patterns_refused(seeded: Any, pattern: Any) -> None:
    before = snapshot(seeded)
    calls: list[Callable[[Any], Any]] = [
        lambda kv: kv.get_pattern(pattern),
        lambda kv: kv.delete_pattern(pattern),
    ]
    if pattern is None:
        # A listing without a pattern is every key; only get/delete_pattern need one.
        assert seeded.keys(pattern) == seeded.keys()
        assert seeded.key_count(pattern) == seeded.key_count()
    else:
        calls += [lambda kv: kv.keys(pattern), lambda kv: kv.key_count(pattern)]
    for call in calls:
        with pytest.raises(keyshelf.InvalidPatternError):
            call(seeded)
    assert snapshot(seeded) == before


def test_mget_of_a_string_is_refused(seeded: Any) -> None:
    with pytest.raises(keyshelf.InvalidKeyError):
        seeded.mget("counter")
