"""Whole-namespace views (VintLang's kv module, kv-store-adapter) and the sync mapping protocol."""

from __future__ import annotations

from typing import Any

import pytest

import keyshelf


def test_keys_values_size_is_empty(kv: Any) -> None:
    assert kv.is_empty() is True
    assert kv.size() == 0
    kv.set("key2", "value2")
    kv.set("key1", "value1")
    assert kv.keys() == ["key1", "key2"]
    assert kv.values() == ["value1", "value2"]
    assert kv.size() == 2
    assert kv.is_empty() is False


def test_clear_returns_count(kv: Any) -> None:
    kv.mset({"a": 1, "b": 2})
    assert kv.clear() == 2
    assert kv.size() == 0
    assert kv.clear() == 0


def test_dump(kv: Any) -> None:
    kv.set("key1", "value1")
    kv.set("key2", 42)
    assert kv.dump() == {"key1": "value1", "key2": 42}


def test_stats(kv: Any, clock: Any) -> None:
    kv.set("a", 1)
    kv.set("b", 1, ttl=100)
    kv.set("c", 1, ttl=0.1)
    stats = kv.stats()
    assert stats["total_keys"] == 3
    assert stats["active_keys"] == 3
    assert stats["expired_keys"] == 0
    assert stats["keys_with_ttl"] == 2
    clock.advance(0.2)
    stats = kv.stats()
    assert stats["active_keys"] == 2
    assert stats["keys_with_ttl"] == 1
    assert stats["total_keys"] - stats["expired_keys"] == 2
    if not clock.self_purging:  # expired records stay until purged: exact counts
        assert stats["total_keys"] == 3 and stats["expired_keys"] == 1


def test_get_many_set_many_delete_many(kv: Any) -> None:
    assert kv.set_many({"config.host": "localhost", "config.port": 8080, "config.ssl": True}) == {
        "config.host": True,
        "config.port": True,
        "config.ssl": True,
    }
    assert kv.get_many(["config.host", "config.port", "missing"]) == {
        "config.host": "localhost",
        "config.port": 8080,
    }
    assert kv.delete_many(["config.host", "missing"]) == {"config.host": True, "missing": False}
    assert kv.keys() == ["config.port", "config.ssl"]


def test_set_many_with_ttl(kv: Any) -> None:
    kv.set_many({"a": 1}, ttl=50)
    assert 49 < kv.ttl("a") <= 50.001


def test_mapping_protocol_sync_only(opener: Any) -> None:
    if opener.api != "sync":
        # An async store cannot offer them: `in` and len() cannot await.
        for name in ("__getitem__", "__contains__", "__len__", "__setitem__"):
            assert not hasattr(keyshelf.AsyncStore, name)
        return
    kv = opener()
    kv["k"] = {"a": 1}
    assert kv["k"] == {"a": 1}
    assert "k" in kv
    assert "missing" not in kv
    assert len(kv) == 1
    assert list(kv) == ["k"]
    del kv["k"]
    with pytest.raises(keyshelf.KeyNotFoundError) as info:
        _ = kv["k"]
    assert isinstance(info.value, KeyError)
    with pytest.raises(KeyError):
        del kv["k"]
    kv["n"] = None
    assert kv["n"] is None


def test_context_manager_closes(opener: Any) -> None:
    kv = opener()
    kv.set("k", 1)
    kv.close()
    with pytest.raises(keyshelf.StoreClosedError):
        kv.get("k")
