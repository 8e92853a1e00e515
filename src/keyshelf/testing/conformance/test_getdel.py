"""getdel: read and delete a key in one atomic operation, on every backend and both APIs.

``getdel`` is a decision that deletes (records.decide_getdel) run by each
backend's read-modify-write step, so these tests also prove that every
backend's ``update`` honours a delete.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import keyshelf


def test_getdel_returns_the_value_and_removes_the_key(kv: Any) -> None:
    kv.set("job:1", {"task": "send", "to": ["a", "b"]}, metadata={"owner": "x"})
    kv.set("other", 1)
    assert kv.getdel("job:1") == {"task": "send", "to": ["a", "b"]}
    assert kv.exists("job:1") is False
    assert kv.get_entry("job:1") is None
    assert kv.keys() == ["other"]
    assert kv.key_count() == 1
    assert kv.stats()["total_keys"] == 1
    assert kv.getdel("job:1") is None
    assert kv.get("other") == 1


@pytest.mark.parametrize("value", [0, 1.5, "", "text", b"\x00bytes", True, [1, [2]], {"a": None}])
def test_getdel_keeps_the_type(kv: Any, value: Any) -> None:
    kv.set("k", value)
    got = kv.getdel("k")
    assert got == value and type(got) is type(value)
    assert kv.exists("k") is False


def test_getdel_of_a_missing_key_is_none_and_changes_nothing(kv: Any) -> None:
    kv.set("keep", "v")
    assert kv.getdel("missing") is None
    assert kv.exists("missing") is False
    assert kv.keys() == ["keep"]


def test_getdel_of_a_stored_none(kv: Any) -> None:
    kv.set("k", None)
    assert kv.getdel("k") is None
    assert kv.exists("k") is False


def test_getdel_treats_an_expired_key_as_missing(kv: Any, clock: Any) -> None:
    kv.set("session", "old", ttl=0.2)
    kv.set("live", "v", ttl=60)
    clock.advance(0.3)
    assert kv.getdel("session") is None
    assert kv.exists("session") is False
    # The key is free: a new value is stored afresh (version 1, no TTL).
    assert kv.setnx("session", "new") is True
    entry = kv.get_entry("session")
    assert entry.value == "new" and entry.expires_at is None and entry.version == 1
    # A key with a TTL is deleted while live.
    assert kv.getdel("live") == "v"
    assert kv.exists("live") is False


def test_a_key_written_again_after_getdel_starts_afresh(kv: Any) -> None:
    kv.set("k", 1, ttl=60, metadata={"m": 1})
    kv.set("k", 2, keep_ttl=True)
    assert kv.getdel("k") == 2
    kv.set("k", 3)
    entry = kv.get_entry("k")
    assert entry.version == 1 and entry.expires_at is None and entry.metadata == {}


def test_getdel_bad_key_is_refused(kv: Any) -> None:
    kv.set("k", 1)
    with pytest.raises(keyshelf.InvalidKeyError):
        kv.getdel("")
    with pytest.raises(keyshelf.InvalidKeyError):
        kv.getdel(1)
    assert kv.get("k") == 1


def test_getdel_in_a_namespace_view(kv: Any) -> None:
    view = kv.namespace("jobs")
    view.set("k", "in view")
    kv.set("k", "in root")
    assert view.getdel("k") == "in view"
    assert view.exists("k") is False
    assert kv.get("k") == "in root"


ROUNDS = 25


def test_concurrent_getdel_gives_the_value_to_exactly_one(opener: Any) -> None:
    # Two callers race getdel on one key, round after round: each value is
    # handed out exactly once and the key is gone after every round.
    kv = opener()
    if opener.api == "async":
        store, loop = kv._store, kv._loop

        async def race(key: str) -> list[Any]:
            return list(await asyncio.gather(store.getdel(key), store.getdel(key)))

        for n in range(ROUNDS):
            kv.set(f"k{n}", n)
            got = loop.run_until_complete(race(f"k{n}"))
            assert sorted(got, key=lambda v: v is None) == [n, None], got
            assert kv.exists(f"k{n}") is False
        return

    # Sync: two threads, each with its own store where a second open shares the data.
    stores = [kv, opener() if opener.shared else kv]
    barrier = threading.Barrier(2)
    results: list[list[Any]] = [[], []]
    errors: list[BaseException] = []

    def work(who: int) -> None:
        try:
            for n in range(ROUNDS):
                barrier.wait(timeout=60)
                results[who].append(stores[who].getdel(f"k{n}"))
                barrier.wait(timeout=60)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
            barrier.abort()

    for n in range(ROUNDS):
        kv.set(f"k{n}", n)
    threads = [threading.Thread(target=work, args=(who,)) for who in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for n in range(ROUNDS):
        pair = [results[0][n], results[1][n]]
        assert sorted(pair, key=lambda v: v is None) == [n, None], (n, pair)
    assert kv.keys() == []
