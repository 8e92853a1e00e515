"""The examples of the documents of cinchdb's KV store, dataknobs-kv, VintLang's kv module and
kv-store-adapter, translated to keyshelf's API (docs/semantics.md).

``db.kv`` / ``store`` / VintLang ``kv`` become a keyshelf store; per-call
``namespace=`` becomes a namespace view; async examples run through both APIs
like every conformance test.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

import pytest

# -- cinchdb's KV store (test_seed000_*) ----------------------------------------


def test_seed000_getting_started(kv: Any) -> None:
    kv.set("user:123", {"name": "Alice", "role": "admin"})
    assert kv.get("user:123") == {"name": "Alice", "role": "admin"}
    kv.set("string_key", "Hello World")
    kv.set("number_key", 42)
    kv.set("bool_key", True)
    kv.set("json_key", {"nested": {"data": [1, 2, 3]}})
    kv.set("binary_key", b"raw bytes")
    assert kv.get("bool_key") is True
    assert kv.get("binary_key") == b"raw bytes"
    kv.set("counter", 42)
    count = kv.get("counter")
    assert (count, type(count)) == (42, int)


def test_seed000_session_manager(kv: Any, clock: Any) -> None:
    class SessionManager:
        def __init__(self, db: Any, ttl: float = 3600) -> None:
            self.db = db
            self.ttl = ttl

        def create_session(self, user_id: int, ip_address: str) -> str:
            session_id = secrets.token_urlsafe(32)
            session_data = {
                "user_id": user_id,
                "ip": ip_address,
                "created": datetime.now().isoformat(),
                "last_activity": datetime.now().isoformat(),
            }
            self.db.set(f"session:{session_id}", session_data, ttl=self.ttl)
            return session_id

        def get_session(self, session_id: str) -> Any:
            return self.db.get(f"session:{session_id}")

        def refresh_session(self, session_id: str) -> bool:
            session = self.get_session(session_id)
            if session:
                session["last_activity"] = datetime.now().isoformat()
                self.db.set(f"session:{session_id}", session, ttl=self.ttl)
                return True
            return False

        def end_session(self, session_id: str) -> bool:
            return bool(self.db.delete(f"session:{session_id}") > 0)

    sessions = SessionManager(kv, ttl=0.3)
    session_id = sessions.create_session(user_id=123, ip_address="192.168.1.1")
    assert sessions.get_session(session_id)["user_id"] == 123
    assert sessions.refresh_session(session_id) is True
    clock.advance(0.4)
    assert sessions.get_session(session_id) is None
    assert sessions.refresh_session(session_id) is False
    other = sessions.create_session(user_id=1, ip_address="::1")
    assert sessions.end_session(other) is True
    assert sessions.end_session(other) is False


def test_seed000_rate_limiting(kv: Any, clock: Any) -> None:
    def check_rate_limit(db: Any, user_id: int, limit: int = 100, window: float = 60) -> Any:
        key = f"rate:{user_id}"
        current = db.get(key)
        if current is None:
            db.set(key, 1, ttl=window)
            return True, 1
        if current >= limit:
            ttl = db.ttl(key)
            return False, ttl
        new_count = db.increment(key)
        return True, new_count

    results = [check_rate_limit(kv, user_id=123, limit=3, window=0.3) for _ in range(4)]
    assert results[:3] == [(True, 1), (True, 2), (True, 3)]
    allowed, info = results[3]
    assert allowed is False and 0 < info <= 0.301
    clock.advance(0.4)
    assert check_rate_limit(kv, user_id=123, limit=3, window=0.3) == (True, 1)


def test_seed000_feature_flags(kv: Any) -> None:
    class FeatureFlags:
        def __init__(self, db: Any) -> None:
            self.db = db
            self.prefix = "feature:"

        def enable(self, feature_name: str, metadata: Any = None) -> None:
            data = {
                "enabled": True,
                "timestamp": datetime.now().isoformat(),
                "metadata": metadata or {},
            }
            self.db.set(f"{self.prefix}{feature_name}", data)

        def disable(self, feature_name: str) -> None:
            data = self.db.get(f"{self.prefix}{feature_name}")
            if data:
                data["enabled"] = False
                self.db.set(f"{self.prefix}{feature_name}", data)

        def is_enabled(self, feature_name: str) -> Any:
            data = self.db.get(f"{self.prefix}{feature_name}")
            return data and data.get("enabled", False)

        def list_features(self) -> dict[str, Any]:
            keys = self.db.keys(f"{self.prefix}*")
            return {key[len(self.prefix) :]: self.db.get(key) for key in keys}

    flags = FeatureFlags(kv)
    flags.enable("dark-mode", {"rollout_percentage": 50})
    assert flags.is_enabled("dark-mode") is True
    flags.disable("dark-mode")
    assert flags.is_enabled("dark-mode") is False
    assert not flags.is_enabled("missing")
    features = flags.list_features()
    assert list(features) == ["dark-mode"]
    assert features["dark-mode"]["metadata"] == {"rollout_percentage": 50}


def test_seed000_distributed_cache(kv: Any) -> None:
    class Cache:
        def __init__(self, db: Any, default_ttl: float = 300) -> None:
            self.db = db
            self.default_ttl = default_ttl

        def _make_key(self, *args: Any, **kwargs: Any) -> str:
            key_data = json.dumps({"args": args, "kwargs": kwargs}, sort_keys=True)
            return f"cache:{hashlib.md5(key_data.encode()).hexdigest()}"

        def get_or_compute(self, func: Any, *args: Any, ttl: Any = None, **kwargs: Any) -> Any:
            cache_key = self._make_key(*args, **kwargs)
            cached = self.db.get(cache_key)
            if cached is not None:
                return cached["result"]
            result = func(*args, **kwargs)
            self.db.set(
                cache_key,
                {"result": result, "computed_at": datetime.now().isoformat()},
                ttl=ttl or self.default_ttl,
            )
            return result

        def invalidate_pattern(self, pattern: str) -> int:
            keys = self.db.keys(f"cache:{pattern}")
            if keys:
                return int(self.db.delete(*keys))
            return 0

    calls = []

    def expensive_calculation(x: int, y: int) -> int:
        calls.append((x, y))
        return x * y

    cache = Cache(kv, default_ttl=600)
    assert cache.get_or_compute(expensive_calculation, 10, 20) == 200
    assert cache.get_or_compute(expensive_calculation, 10, 20) == 200
    assert calls == [(10, 20)]
    assert cache.invalidate_pattern("*") == 1


def test_seed000_troubleshooting(kv: Any) -> None:
    keys = ["key1", "key2", "key3"]
    kv.set("key2", 2)
    existing = [k for k in keys if kv.exists(k)]
    assert kv.mget(existing) == {"key2": 2}
    kv.set("counter", "10")
    with pytest.raises(ValueError, match="Cannot increment non-numeric value"):
        kv.increment("counter")
    kv.set("counter", 10)
    assert kv.increment("counter") == 11


# -- dataknobs-kv, README and design plan (test_seed001_*) -------------------------


def test_seed001_quick_start(opener: Any) -> None:
    store = opener(separator=".")
    store.set("app.name", "MyApplication")
    store.set("app.version", "1.0.0")
    store.set("app.config.debug", True)
    assert store.get("app.name") == "MyApplication"
    assert store.get("app.config.debug") is True
    assert store.keys("app.*") == ["app.name", "app.version"]
    assert store.get_pattern("app.config.*") == {"app.config.debug": True}
    store.delete("app.config.debug")
    assert store.delete_pattern("app.temp.*") == 0
    assert store.keys("app.**") == ["app.name", "app.version"]


def test_seed001_batch_and_atomic(opener: Any) -> None:
    store = opener(separator=".")
    store.set_many({"config.host": "localhost", "config.port": 8080, "config.ssl": True})
    assert store.get_many(["config.host", "config.port", "config.ssl"]) == {
        "config.host": "localhost",
        "config.port": 8080,
        "config.ssl": True,
    }
    assert store.delete_many(["temp.file1", "config.ssl"]) == {
        "temp.file1": False,
        "config.ssl": True,
    }
    assert store.increment("stats.page_views") == 1
    assert store.increment("inventory.item_123", delta=-1) == -1
    store.set("counter", 5)
    assert store.compare_and_swap("counter", old_value=5, new_value=6) is True
    assert store.increment("page.views", delta=1) == 1


def test_seed001_namespace_isolation(opener: Any) -> None:
    user_store = opener(namespace="user_data")
    system_store = user_store.namespace("system")
    user_store.set("settings", {"theme": "dark"})
    system_store.set("settings", {"debug": True})
    assert user_store.get("settings") == {"theme": "dark"}
    assert system_store.get("settings") == {"debug": True}


def test_seed001_ttl_and_cleanup(opener: Any, clock: Any) -> None:
    store = opener(separator=".")
    store.set("session.abc123", {"u": 1}, ttl=0.2)
    store.set("cache.results", [1], ttl=0.2)
    assert store.exists("session.abc123")
    clock.advance(0.3)
    assert not store.exists("session.abc123")
    expired_count = store.cleanup_expired()
    if clock.self_purging:
        # The server may already have removed either key by itself.
        assert expired_count in (0, 1, 2)
    else:
        assert expired_count == 2
    assert store.cleanup_expired() == 0
    assert store.keys() == []


# -- VintLang's kv module (test_seed002_*) -----------------------------------------


def test_seed002_module(kv: Any, clock: Any) -> None:
    assert kv.set("user:123", {"name": "John", "age": 30}) is True
    kv.set("session:456", "active")
    assert kv.get("nonexistent") is None
    assert kv.delete("session:456") == 1
    assert kv.exists("user:123")
    kv.set("session:temp", "temporary_data", ttl=300)
    remaining = kv.ttl("session:temp")
    assert remaining is not None and remaining > 0
    kv.set("temp:data", "some data")
    assert kv.expire("temp:data", 60) is True
    kv.set("user:1", "Alice")
    kv.set("user:2", "Bob")
    users = kv.get_many(["user:1", "user:2", "user:3"])
    assert [users.get(k) for k in ["user:1", "user:2", "user:3"]] == ["Alice", "Bob", None]
    assert kv.mset({"config:theme": "dark", "config:language": "en", "config:notifications": True})
    assert kv.increment("page:views") == 1
    assert kv.increment("user:score", 10) == 10
    kv.set("counter", 5)
    assert kv.increment("counter", 3) == 8
    assert kv.decrement("lives") == -1
    kv.set("inventory", 100)
    assert kv.decrement("inventory", 15) == 85
    stats = kv.stats()
    assert set(stats) >= {"total_keys", "active_keys", "expired_keys", "keys_with_ttl"}
    assert stats["keys_with_ttl"] == 2
    data = kv.dump()
    assert data["user:123"] == {"name": "John", "age": 30}
    assert kv.clear() == len(data)
    assert kv.is_empty()


def test_seed002_bad_expire(kv: Any) -> None:
    kv.set("key", 1)
    with pytest.raises(ValueError, match="TTL must be positive"):
        kv.expire("key", -5)
    assert kv.ttl("key") is None


# -- kv-store-adapter (test_seed003_*) ---------------------------------------------


def test_seed003_quick_start(kv: Any, clock: Any) -> None:
    kv.set("user:1", {"name": "Alice", "age": 30})
    assert kv.get("user:1") == {"name": "Alice", "age": 30}
    kv.set("session:abc", {"user_id": 1}, ttl=timedelta(hours=1))
    kv.namespace("app").set("config", "production")
    kv.namespace("test").set("config", "debug")
    assert kv.namespace("app").get("config") == "production"
    kv.set("user:2", "Bob")
    kv.set("admin:1", "Charlie")
    assert kv.keys(pattern="user:*") == ["user:1", "user:2"]
    kv.set("session", {"user": "alice"}, ttl=0.3)
    remaining = kv.ttl("session")
    assert f"{remaining:.2f}" in {"0.30", "0.29", "0.28", "0.27", "0.26", "0.25"}
    clock.advance(0.31)
    assert kv.exists("session") is False


def test_seed003_namespaces(kv: Any) -> None:
    kv.namespace("user:1").set("settings", {"theme": "dark"})
    kv.namespace("user:2").set("settings", {"theme": "light"})
    kv.namespace("temp").set("cache", "some_value")
    assert kv.namespace("user:1").get("settings") == {"theme": "dark"}
    assert kv.namespace("temp").keys() == ["cache"]
    assert sorted(kv.list_namespaces()) == ["temp", "user:1", "user:2"]
    assert kv.clear_namespace("temp") == 1


def test_seed003_persistence(opener: Any) -> None:
    store1 = opener()
    store1.set("persistent_key", "persistent_value")
    store2 = opener()
    if opener.shared:
        assert store2.get("persistent_key") == "persistent_value"
    else:  # every memory:// store is new and private (docs/semantics.md)
        assert store2.get("persistent_key") is None
