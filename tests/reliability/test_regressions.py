"""Defects the reliability suite found, each pinned on every backend through both APIs."""

from __future__ import annotations

from typing import Any

import pytest

import keyshelf


def unchanged(kv: Any) -> Any:
    return kv.dump(), kv.stats()


# -- keys that are not hashable, or not exactly str ------------------------------------


class StrSubclass(str):
    pass


@pytest.mark.parametrize("key", [["k"], {"k": 1}, {"k"}, bytearray(b"k")])
def test_unhashable_keys_are_invalid_keys(kv: Any, key: Any) -> None:
    # Was: TypeError("unhashable type") from the valid-key cache, not InvalidKeyError.
    kv.set("k", 1)
    before = unchanged(kv)
    calls = [
        lambda: kv.get(key),
        lambda: kv.set(key, 1),
        lambda: kv.exists(key),
        lambda: kv.increment(key),
        lambda: kv.append(key, "x"),
        lambda: kv.delete(key),
        lambda: kv.delete_many([key]),
        lambda: kv.mget(["k", key]),
        lambda: kv.storage_size(key),
    ]
    for call in calls:
        with pytest.raises(keyshelf.InvalidKeyError, match="non-empty string"):
            call()
    assert unchanged(kv) == before


def test_str_subclass_is_refused_even_when_the_key_was_seen(kv: Any) -> None:
    # Was: accepted once the equal plain str had been used (the cache skipped the type rule).
    kv.set("seen", 1)
    for call in (
        lambda: kv.get(StrSubclass("seen")),
        lambda: kv.set(StrSubclass("seen"), 2),
        lambda: kv.get_many([StrSubclass("seen")]),
    ):
        with pytest.raises(keyshelf.InvalidKeyError, match="non-empty string"):
            call()
    assert kv.get("seen") == 1


@pytest.mark.parametrize("batch", [None, 5, 1.5, object()])
def test_non_iterable_key_batches_are_invalid_keys(kv: Any, batch: Any) -> None:
    # Was: TypeError("... object is not iterable").
    kv.set("k", 1)
    before = unchanged(kv)
    for call in (
        lambda: kv.mget(batch),
        lambda: kv.get_many(batch),
        lambda: kv.delete_many(batch),
    ):
        with pytest.raises(keyshelf.InvalidKeyError, match="Invalid key batch"):
            call()
    assert unchanged(kv) == before
