"""Namespace isolation (cinchdb tenants, dataknobs-kv namespaces, kv-store-adapter namespace=)."""

from __future__ import annotations

from typing import Any

import pytest

import keyshelf


def test_views_are_isolated(kv: Any) -> None:
    tenant1 = kv.namespace("customer1")
    tenant2 = kv.namespace("customer2")
    tenant1.set("key", "tenant1_data")
    tenant2.set("key", "tenant2_data")
    assert tenant1.get("key") == "tenant1_data"
    assert tenant2.get("key") == "tenant2_data"
    assert kv.get("key") is None
    assert kv.namespace_name == "default"


def test_every_method_acts_on_its_namespace(kv: Any, clock: Any) -> None:
    other = kv.namespace("other")
    kv.mset({"a": 1, "b": 2})
    other.mset({"a": 10, "c": 30})
    other.set("gone", 1, ttl=0.1)
    kv.set("gone", 1, ttl=0.1)
    assert kv.keys() == ["a", "b", "gone"]
    assert other.size() == 3
    assert other.dump() == {"a": 10, "c": 30, "gone": 1}
    assert other.storage_size() == {"total": 24}
    clock.advance(0.2)
    if not clock.self_purging:  # expired records stay until purged: exact counts
        assert other.stats()["total_keys"] == 3
        assert other.delete_expired() == 1
        assert kv.stats()["expired_keys"] == 1
    assert other.clear() == 2
    assert kv.dump() == {"a": 1, "b": 2}
    assert other.is_empty()


def test_list_and_clear_namespaces(kv: Any) -> None:
    kv.namespace("user:1").set("settings", {"theme": "dark"})
    kv.namespace("user:2").set("settings", {"theme": "light"})
    kv.namespace("temp").set("cache", "some_value")
    assert kv.list_namespaces() == ["temp", "user:1", "user:2"]
    assert kv.clear_namespace("temp") == 1
    assert kv.list_namespaces() == ["user:1", "user:2"]
    assert kv.clear_namespace("temp") == 0


def test_namespace_with_only_expired_keys_is_not_listed(kv: Any, clock: Any) -> None:
    kv.namespace("short").set("k", 1, ttl=0.1)
    clock.advance(0.2)
    assert kv.list_namespaces() == []


def test_crafted_namespaces_never_collide(kv: Any) -> None:
    kv.namespace("a:b").set("c", "first")
    kv.namespace("a").set("b:c", "second")
    kv.namespace("a.b").set("c", "third")
    kv.namespace("a").set("b.c", "fourth")
    kv.namespace("1:a").set("b", "fifth")
    assert kv.namespace("a:b").get("c") == "first"
    assert kv.namespace("a").get("b:c") == "second"
    assert kv.namespace("a").keys() == ["b.c", "b:c"]
    assert kv.namespace("a:b").keys() == ["c"]
    assert kv.namespace("a.b").keys() == ["c"]
    assert kv.namespace("1:a").get("b") == "fifth"
    assert kv.namespace("a").delete_pattern("*") == 2
    assert kv.namespace("a:b").get("c") == "first"


def test_namespace_names_follow_key_rules(kv: Any) -> None:
    for bad in ["", "__sys", "a\nb", 5, None, "x" * 256]:
        with pytest.raises(keyshelf.InvalidKeyError):
            kv.namespace(bad)
    with pytest.raises(keyshelf.InvalidKeyError):
        kv.clear_namespace("__sys")


def test_open_with_namespace(opener: Any) -> None:
    store = opener(namespace="tenant")
    store.set("k", 1)
    assert store.namespace_name == "tenant"
    assert store.list_namespaces() == ["tenant"]
    if opener.shared:
        assert opener(namespace="tenant").get("k") == 1
        assert opener().get("k") is None


def test_views_share_data_with_their_store(kv: Any) -> None:
    view = kv.namespace("shared")
    view.set("k", 1)
    assert kv.namespace("shared").get("k") == 1
    view.close()
    assert kv.namespace("shared").get("k") == 1
