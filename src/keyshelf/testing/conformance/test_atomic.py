"""Atomic operations: increment/decrement, compare_and_swap, append."""

from __future__ import annotations

import math
from typing import Any

import pytest

import keyshelf


def test_increment_creates_then_adds(kv: Any) -> None:
    assert kv.increment("page:views") == 1
    assert kv.increment("page:views", 5) == 6
    assert kv.increment("inventory:item123", -1) == -1
    assert kv.get("page:views") == 6
    assert kv.ttl("page:views") is None


def test_increment_returns_int_type(kv: Any) -> None:
    kv.set("counter", 10)
    result = kv.increment("counter")
    assert result == 11 and type(result) is int
    assert type(kv.get("counter")) is int


def test_increment_float(kv: Any) -> None:
    kv.set("f", 1.5)
    assert kv.increment("f", 2) == 3.5
    assert type(kv.get("f")) is float
    kv.set("i", 1)
    result = kv.increment("i", 0.5)
    assert result == 1.5 and type(result) is float
    assert kv.get("i") == 1.5


def test_increment_float_stays_float_when_integral(kv: Any) -> None:
    kv.set("f", 1.5)
    assert kv.increment("f", 0.5) == 2.0
    got = kv.get("f")
    assert type(got) is float and got == 2.0


def test_increment_special_floats(kv: Any) -> None:
    kv.set("inf", float("inf"))
    assert kv.increment("inf") == float("inf")
    kv.set("f", 1.0)
    assert kv.increment("f", float("inf")) == float("inf")
    assert kv.get("f") == float("inf")
    assert math.isnan(kv.increment("f", float("-inf")))


def test_increment_keeps_ttl_and_metadata(kv: Any) -> None:
    kv.set("rate:1", 1, ttl=60, metadata={"owner": "a"})
    assert kv.increment("rate:1") == 2
    assert 59 < kv.ttl("rate:1") <= 60.001
    assert kv.get_metadata("rate:1") == {"owner": "a"}


@pytest.mark.parametrize("value", ["hello", "10", True, False, None, [1], {"a": 1}, b"1"])
def test_increment_non_numeric(kv: Any, value: Any) -> None:
    kv.set("k", value)
    with pytest.raises(ValueError, match=r"^Cannot increment non-numeric value$"):
        kv.increment("k")
    assert kv.get("k") == value and type(kv.get("k")) is type(value)


@pytest.mark.parametrize("delta", ["1", None, True, [1], 1j])
def test_increment_bad_delta(kv: Any, delta: Any) -> None:
    kv.set("k", 1)
    with pytest.raises(ValueError, match=r"^Amount must be numeric$"):
        kv.increment("k", delta)
    with pytest.raises(ValueError, match=r"^Amount must be numeric$"):
        kv.decrement("k", delta)
    with pytest.raises(ValueError, match=r"^Amount must be numeric$"):
        kv.increment("new", delta)
    assert kv.get("k") == 1
    assert kv.exists("new") is False


def test_increment_overflow(kv: Any) -> None:
    kv.set("big", 2**63 - 1)
    with pytest.raises(OverflowError):
        kv.increment("big")
    assert kv.get("big") == 2**63 - 1
    kv.set("small", -(2**63))
    with pytest.raises(OverflowError):
        kv.decrement("small")
    with pytest.raises(OverflowError):
        kv.increment("new", 2**64)
    assert kv.exists("new") is False
    assert kv.increment("big", -1) == 2**63 - 2


def test_increment_big_int_beyond_64_bits_overflows(kv: Any) -> None:
    kv.set("huge", 2**80)
    with pytest.raises(keyshelf.IncrementOverflowError):
        kv.increment("huge")
    assert kv.get("huge") == 2**80


def test_increment_of_an_int_beyond_the_str_digit_limit_overflows(kv: Any) -> None:
    # 7**6000 has ~5,100 digits: more than int() parses by default, so the
    # stored text must be read by keyshelf's own conversion, not int().
    kv.set("huge", -(7**6000))
    with pytest.raises(keyshelf.IncrementOverflowError):
        kv.increment("huge", 2**62)
    assert kv.get("huge") == -(7**6000)


def test_decrement(kv: Any) -> None:
    assert kv.decrement("lives") == -1
    kv.set("inventory", 100)
    assert kv.decrement("inventory", 15) == 85


def test_compare_and_swap(kv: Any) -> None:
    kv.set("version", "1.0.0")
    assert kv.compare_and_swap("version", old_value="1.0.0", new_value="1.1.0") is True
    assert kv.get("version") == "1.1.0"
    assert kv.compare_and_swap("version", "1.0.0", "2.0.0") is False
    assert kv.get("version") == "1.1.0"


def test_compare_and_swap_typed_equality(kv: Any) -> None:
    kv.set("counter", 1)
    assert kv.compare_and_swap("counter", 1.0, 2) is False
    assert kv.compare_and_swap("counter", True, 2) is False
    assert kv.compare_and_swap("counter", 1, 2) is True
    kv.set("flag", True)
    assert kv.compare_and_swap("flag", 1, False) is False
    assert kv.compare_and_swap("flag", True, False) is True
    assert kv.get("flag") is False


def test_compare_and_swap_containers(kv: Any) -> None:
    kv.set("doc", {"a": [1, 2], "b": None})
    assert kv.compare_and_swap("doc", {"a": [1, 2], "b": None}, {"a": []}) is True
    assert kv.get("doc") == {"a": []}
    kv.set("s", {3, 1, 2})
    assert kv.compare_and_swap("s", {1, 2, 3}, "ok") is True


def test_compare_and_swap_missing_never_matches(kv: Any) -> None:
    assert kv.compare_and_swap("missing", None, 1) is False
    assert kv.exists("missing") is False


def test_compare_and_swap_keeps_ttl(kv: Any) -> None:
    kv.set("counter", 5, ttl=100)
    assert kv.compare_and_swap("counter", old_value=5, new_value=6) is True
    assert 99 < kv.ttl("counter") <= 100.001


def test_append(kv: Any) -> None:
    assert kv.append("logs.access", "2024-01-15 10:30 User login") == "2024-01-15 10:30 User login"
    assert kv.append("logs.access", "\nNew entry") == "2024-01-15 10:30 User login\nNew entry"
    kv.set("notes", "Hello")
    assert kv.append("notes", ", Remember to update docs") == "Hello, Remember to update docs"
    kv.set("raw", b"ab")
    assert kv.append("raw", b"cd") == b"abcd"
    assert kv.get("raw") == b"abcd"


def test_append_keeps_ttl(kv: Any) -> None:
    kv.set("log", "a", ttl=100)
    kv.append("log", "b")
    assert 99 < kv.ttl("log") <= 100.001


@pytest.mark.parametrize(
    ("stored", "added"), [("text", b"bytes"), (b"bytes", "text"), (1, "x"), ([1], "x"), ("x", 1)]
)
def test_append_type_mismatch(kv: Any, stored: Any, added: Any) -> None:
    kv.set("k", stored)
    with pytest.raises(ValueError):
        kv.append("k", added)
    assert kv.get("k") == stored


def test_version_counts_writes(kv: Any) -> None:
    kv.set("k", 1)
    assert kv.get_entry("k").version == 1
    kv.increment("k")
    kv.append("s", "a")
    kv.compare_and_swap("k", 2, 3)
    kv.set_metadata("k", {"a": 1})
    assert kv.get_entry("k").version == 4
    kv.expire("k", 100)
    kv.persist("k")
    assert kv.get_entry("k").version == 4
