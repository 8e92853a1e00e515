"""The inlined hot paths of a set agree with the general code they shortcut.

``check_key``'s inline rules, ``Codec.encode``'s inline plain-dict path,
``_prepare_set``'s whole-second TTL and the memory backend's inline
record replacement each repeat, for speed, a decision made elsewhere in
full. These tests pin each shortcut to the general code on the cases where
they could part ways.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import keyshelf
from keyshelf.codec import Codec
from keyshelf.errors import InvalidKeyError, SerializationError
from keyshelf.expiry import MAX_TTL_SECONDS, expires_at
from keyshelf.keys import _problem, _valid_cache, check_key

KEYS = [
    "user:1",
    "a",
    " ",
    "with space",
    "x" * 255,
    "x" * 256,
    "",
    "__private",
    "_one",
    "tab\there",
    "new\nline",
    "nul\0",
    "family 👨\u200d👩\u200d👧",  # a ZWJ sequence: not isprintable(), still valid
    "nbsp\u00a0",
    "lone \ud800",
    "line sep \u2028",
    "ünïcödé",
]


@pytest.mark.parametrize("key", KEYS)
def test_check_key_agrees_with_the_full_rules(key: str) -> None:
    _valid_cache.clear()  # the first check of a key takes the inline path
    problem = _problem(key, "Key")
    for _ in range(2):  # and the second one the cache
        if problem is None:
            assert check_key(key) == key
        else:
            with pytest.raises(InvalidKeyError, match="Key"):
                check_key(key)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1, 2.5, None, True], "c": {"d": "e"}},
        {"$int": "5"},  # a tag-like key: must be tagged, not dumped as it is
        {"t": (1, 2)},
        {"s": {1, 2}},
        {"big": 2**70},
        {"f": float("nan")},
        {"when": datetime(2024, 1, 2, tzinfo=UTC)},
        {1: "non-string key"},
    ],
)
def test_inline_dict_encoding_round_trips_exactly(value: dict[Any, Any]) -> None:
    codec = Codec()
    tag, payload = codec.encode(value)
    back = codec.decode(tag, payload)
    assert type(back) is dict
    assert repr(back) == repr(value)  # nan != nan: compare the text


@pytest.mark.parametrize(
    "value",
    [{"s": "lone \ud800"}, {"o": object()}, {"deep": {"x": {1: object()}}}],
)
def test_inline_dict_encoding_refuses_what_the_codec_refuses(value: dict[str, Any]) -> None:
    with pytest.raises(SerializationError):
        Codec().encode(value)


def test_a_deep_dict_takes_the_deep_path() -> None:
    value: dict[str, Any] = {}
    inner = value
    for _ in range(600):
        inner["k"] = {}
        inner = inner["k"]
    codec = Codec()
    assert codec.decode(*codec.encode(value)) == value


@pytest.mark.parametrize("ttl", [1, 7, 3600, 86_400 * 365, MAX_TTL_SECONDS - 1, MAX_TTL_SECONDS])
def test_a_whole_second_ttl_expires_where_the_float_path_says(ttl: int) -> None:
    now = 1_700_000_000.123

    kv = keyshelf.open("memory://", clock=lambda: now)
    kv.set("k", 1, ttl=ttl)
    record = kv._backend.get_record("default", "k", 1_700_000_000_123)
    assert record is not None
    assert record.expires_at == expires_at(1_700_000_000_123, ttl)
    assert record.expires_at == expires_at(1_700_000_000_123, float(ttl))


def test_memory_set_over_an_expired_record_starts_it_afresh() -> None:
    clock = [1000.0]
    kv = keyshelf.open("memory://", clock=lambda: clock[0])
    kv.set("k", "a", ttl=1, metadata={"m": 1})
    kv.set("k", "b", ttl=1)
    assert kv.get_entry("k").version == 2
    clock[0] += 5  # both expired
    kv.set("k", "c")
    entry = kv.get_entry("k")
    assert entry.version == 1
    assert entry.metadata == {}
    assert entry.created_at == datetime.fromtimestamp(1005, tz=UTC)
    assert kv.ttl("k") is None
    # nx sees the expired record as absent, xx as missing.
    clock[0] += 1
    kv.set("t", 1, ttl=1)
    clock[0] += 2
    assert kv.set("t", 2, xx=True) is False
    assert kv.set("t", 3, nx=True) is True
    assert kv.get("t") == 3
