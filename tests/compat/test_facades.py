"""The facades' own decisions: config mapping, return values, errors, delegation."""

from __future__ import annotations

import asyncio
import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.compat import dataknobs_kv
from keyshelf.compat.dataknobs_kv import KVStore, backend_target, migrate_store
from keyshelf.compat.kv_store_adapter import (
    DiskKVStore,
    MemoryKVStore,
    RedisKVStore,
    exceptions,
)

from ..conftest import FakeClock

# -- dataknobs_kv: backend + config -> URL + options ---------------------------------


def test_memory_target() -> None:
    assert backend_target("memory") == ("memory://", {})


def test_file_target_takes_seed_001_config() -> None:
    config = {"path": "/data/kv.json", "format": "json", "compression": "gzip"}
    assert backend_target("file", config) == ("file://", config)
    assert backend_target("file") == ("file://", {"path": "kv_store.json"})


def test_sqlite_target() -> None:
    assert backend_target("sqlite", {"path": "/a b/kv.db"}) == ("sqlite:////a%20b/kv.db", {})
    assert backend_target("sqlite", {"path": "rel.db", "durable": True}) == (
        "sqlite:///rel.db",
        {"durable": True},
    )


def test_redis_target() -> None:
    url, options = backend_target(
        "redis", {"host": "cache", "port": 6380, "db": 2, "password": "pw"}
    )
    assert (url, options) == ("redis://cache:6380", {"db": 2, "password": "pw"})
    assert backend_target("redis", {"host": "::1", "ssl": True})[0] == "rediss://[::1]:6379"
    assert backend_target("redis", {"unix_socket_path": "/run/r.sock"}) == (
        "unix:///run/r.sock",
        {"db": 0},
    )
    # None means "not given", as in redis-py.
    assert backend_target("redis", {"password": None}) == ("redis://localhost:6379", {"db": 0})


def test_postgres_target() -> None:
    config = {"host": "db", "port": 5433, "database": "app", "user": "u", "table": "kv_store"}
    assert backend_target("postgres", config) == (
        "postgresql://localhost",
        {"host": "db", "port": "5433", "dbname": "app", "user": "u", "table": "kv_store"},
    )
    assert backend_target("postgresql", {"schema": "s"}) == (
        "postgresql://localhost",
        {"host": "localhost", "schema": "s"},
    )
    with pytest.raises(keyshelf.InvalidURLError, match="database or dbname"):
        backend_target("postgres", {"database": "a", "dbname": "b"})


def test_config_url_gives_a_keyshelf_url() -> None:
    assert backend_target("redis", {"url": "redis://h/3", "prefix": "p"}) == (
        "redis://h/3",
        {"prefix": "p"},
    )


def test_default_config_is_the_base_of_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(dataknobs_kv.DEFAULT_CONFIG, "redis", {"host": "h", "prefix": "app"})
    assert backend_target("redis", {"port": 1}) == ("redis://h:1", {"prefix": "app"})


def test_s3_config_maps_onto_an_s3_url() -> None:
    config = {"bucket": "my-kv-store", "prefix": "data/", "region": "us-west-2"}
    assert backend_target("s3", config) == ("s3://my-kv-store/data", {"region": "us-west-2"})
    with pytest.raises(keyshelf.InvalidURLError, match="needs config\\['bucket'\\]"):
        backend_target("s3", {"prefix": "data/"})


@pytest.mark.parametrize("name", ["elasticsearch", "mongodb"])
def test_unsupported_backends_are_refused_clearly(name: str) -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="not supported by keyshelf; use one of"):
        KVStore(backend=name, config={"bucket": "b"})


def test_bad_config_is_refused_at_construction() -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="config must be a dict"):
        KVStore(backend="memory", config=["path"])  # type: ignore[arg-type]
    with pytest.raises(keyshelf.InvalidURLError, match="Unknown option"):
        KVStore(backend="memory", config={"bucket": "b"})
    with pytest.raises(keyshelf.InvalidURLError):
        KVStore(backend="memory", cache="redis")


# -- dataknobs_kv: the store ---------------------------------------------------------


async def test_returns_follow_the_documents() -> None:
    async with KVStore() as store:
        assert await store.set("a.b", 1) is True
        assert await store.delete("a.b") is True  # a bool, not keyshelf's count
        assert await store.delete("a.b") is False
        assert await store.get("missing") is None
        assert await store.get("missing", "fallback") == "fallback"
        assert await store.set("doc", b"x", {"author": "me"}) is True  # metadata 3rd, as in 004
        assert await store.get_metadata("doc") == {"author": "me"}
        assert await store.set("s", 1, ttl=timedelta(minutes=1))
        assert await store.set_many({"m.1": 1}, ttl=5) == {"m.1": True}
        assert 0 < await store.ttl("m.1") <= 5.001


async def test_keys_without_a_pattern_lists_every_key() -> None:
    async with KVStore() as store:
        await store.set_many({"top": 1, "a.b": 2, "a.b.c": 3})
        assert await store.keys() == ["a.b", "a.b.c", "top"]
        assert await store.keys("*") == ["top"]  # "*" stays in one segment
        assert await store.keys("a.**") == ["a.b", "a.b.c"]


async def test_separator_none_gives_redis_glob() -> None:
    async with KVStore(separator=None) as store:
        await store.set_many({"top": 1, "a.b": 2})
        assert await store.keys("*") == ["a.b", "top"]
        assert await store.keys() == ["a.b", "top"]


async def test_other_keyshelf_methods_are_reachable() -> None:
    async with KVStore(namespace="tenant") as store:
        assert store.namespace == "tenant"
        assert isinstance(store.kv, keyshelf.AsyncStore)
        await store.set("n", 10)
        assert await store.decrement("n", 3) == 7
        assert await store.expire("n", 60) is True
        assert (await store.get_entry("n")).version == 2
        assert await store.stats() == {
            "total_keys": 1,
            "active_keys": 1,
            "expired_keys": 0,
            "keys_with_ttl": 1,
            "evictions": 0,
        }
        with pytest.raises(AttributeError):
            store.no_such_method  # noqa: B018
        with pytest.raises(AttributeError):
            store._private  # noqa: B018


async def test_namespaces_share_a_persistent_store(tmp_path: Path) -> None:
    config = {"path": str(tmp_path / "shared.json")}
    async with KVStore("file", config, namespace="a") as a, KVStore("file", config) as b:
        await a.set("k", "from a")
        assert await b.get("k") is None
        assert await b.kv.namespace("a").get("k") == "from a"


class Thing:
    """Not a type the typed codec takes."""


async def test_options_reach_keyshelf() -> None:
    async with KVStore(codec="pickle", max_value_size=100) as store:
        await store.set("t", Thing())
        assert type(await store.get("t")) is Thing
        with pytest.raises(keyshelf.ValueTooLargeError):
            await store.set("big", "x" * 101)
    async with KVStore(cache="memory", cache_ttl=5, cache_size=10) as store:
        await store.set("k", 1)
        await store.get("k")
        await store.get("k")
        assert store.kv.backend.cache.hits == 1


async def test_auto_cleanup_purges_in_the_background() -> None:
    clock = FakeClock()
    store = KVStore(auto_cleanup=True, cleanup_interval=0.02, clock=clock)
    try:
        await store.set("gone", 1, ttl=1)
        clock.advance(2)
        for _ in range(100):
            if (await store.stats())["total_keys"] == 0:
                break
            await asyncio.sleep(0.02)
        assert (await store.stats())["total_keys"] == 0
    finally:
        await store.close()


async def test_migrate_store_copies_every_namespace(tmp_path: Path) -> None:
    source = KVStore("file", {"path": str(tmp_path / "data.json")})
    target = KVStore("sqlite", {"path": str(tmp_path / "data.db")})
    try:
        await source.set("app.name", "MyApp", {"owner": "ops"}, ttl=3600)
        await source.kv.namespace("tenant1").set("theme", "dark")
        progress: list[tuple[int, int]] = []
        copied = await migrate_store(
            source, target, batch_size=1, progress=lambda d, t: progress.append((d, t))
        )
        assert copied == 2
        assert progress[-1] == (2, 2)
        assert await target.get_metadata("app.name") == {"owner": "ops"}
        assert 3590 < await target.ttl("app.name") <= 3600.001
        assert await target.kv.namespace("tenant1").get("theme") == "dark"
        assert await migrate_store(source.kv, f"sqlite:///{tmp_path / 'copy.db'}") == 2
    finally:
        await source.close()
        await target.close()


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


class PointStore(KVStore):
    def serialize(self, value: Any) -> Any:
        if isinstance(value, Point):
            return pickle.dumps(value)
        return super().serialize(value)

    def deserialize(self, data: Any, value_type: str) -> Any:
        if value_type == "custom":
            return pickle.loads(data)
        return super().deserialize(data, value_type)


async def test_custom_serialization_hooks_are_the_codec() -> None:
    async with PointStore() as store:
        await store.set("p", Point(3))
        assert (await store.get("p")).x == 3
        await store.set("tuple", (1, {2}))
        assert await store.get("tuple") == (1, {2})
        assert await store.get_many(["p", "tuple"]) != {}
    async with KVStore() as plain:
        assert plain.kv._codec is keyshelf.codec.get_codec(None)  # no hooks: the default codec


async def test_serialize_must_return_a_payload() -> None:
    class Bad(KVStore):
        def serialize(self, value: Any) -> Any:
            return {"not": "a payload"}

    async with Bad() as store:
        with pytest.raises(keyshelf.SerializationError, match="serialize\\(\\) must return"):
            await store.set("k", 1)
        assert await store.keys() == []


# -- kv_store_adapter ------------------------------------------------------------------


def test_exceptions_are_keyshelf_classes() -> None:
    assert exceptions.KeyNotFoundError is keyshelf.KeyNotFoundError
    assert issubclass(exceptions.KeyNotFoundError, KeyError)
    assert exceptions.KVStoreError is keyshelf.KVError
    assert exceptions.TTLError is keyshelf.InvalidTTLError
    assert exceptions.NamespaceError is keyshelf.InvalidKeyError


def test_get_is_strict_but_a_stored_none_is_a_value() -> None:
    with MemoryKVStore() as store:
        with pytest.raises(exceptions.KeyNotFoundError, match="'k' not found in namespace 'ns'"):
            store.get("k", namespace="ns")
        assert store.set("k", None) is None
        assert store.get("k") is None


def test_ttl_is_none_without_expiry_or_key() -> None:
    clock = FakeClock()
    with MemoryKVStore(clock=clock) as store:
        store.set("plain", 1)
        store.set("short", 1, ttl=timedelta(seconds=10))
        assert store.ttl("plain") is None
        assert store.ttl("missing") is None
        assert store.ttl("short") == pytest.approx(10, abs=0.002)
        clock.advance(10.01)
        assert store.ttl("short") is None
        assert store.exists("short") is False
        with pytest.raises(exceptions.TTLError, match="TTL must be positive"):
            store.set("k", 1, ttl=0)


def test_namespaces() -> None:
    with MemoryKVStore(namespace="home") as store:
        store.set("k", "home")
        store.set("k", "other", namespace="other")
        assert store.get("k") == store.get("k", namespace="home") == "home"
        assert store.keys() == ["k"]
        assert store.list_namespaces() == ["home", "other"]
        assert store.delete("k", namespace="other") is True
        assert store.delete("k", namespace="other") is False
        assert store.clear_namespace(None) == 1
        assert store.list_namespaces() == []
        with pytest.raises(exceptions.NamespaceError):
            store.set("k", 1, namespace="")


def test_keys_use_redis_glob() -> None:
    with MemoryKVStore() as store:
        for key in ("user:1", "user:2", "user:10", "admin:1"):
            store.set(key, 1)
        assert store.keys(pattern="user:?") == ["user:1", "user:2"]
        assert store.keys(pattern="user:[^1]") == ["user:2"]
        assert store.keys(None, "*:1") == ["admin:1", "user:1"]


def test_disk_store_is_an_sqlite_file_in_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "dir"
    with DiskKVStore(directory) as store:
        store.set("k", {"v": (1, 2)})
    assert (directory / "kv.db").is_file()
    with keyshelf.open(f"sqlite:///{directory / 'kv.db'}") as kv:
        assert kv.get("k") == {"v": (1, 2)}
    (tmp_path / "file").write_text("")
    with pytest.raises(keyshelf.BackendUnavailableError, match="Cannot create the directory"):
        DiskKVStore(tmp_path / "file")


def test_redis_store_refuses_unknown_arguments(redis_defaults: dict[str, Any]) -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="decode_responses"):
        RedisKVStore(decode_responses=True)


def test_redis_store_arguments(redis_defaults: dict[str, Any]) -> None:
    with RedisKVStore(socket_timeout=5, socket_connect_timeout=2, client_name="compat") as store:
        store.set("k", 1, ttl=timedelta(minutes=1))
        assert 59 < store.ttl("k") <= 60.001
        assert store.keys() == ["k"]
    other = {**redis_defaults, "prefix": redis_defaults["prefix"] + "-other"}
    with RedisKVStore(**other) as isolated:
        assert isolated.keys() == []


def test_migrating_doc_flatten_recipe_runs() -> None:
    """The JSON-config recipe of docs/migrating.md works as printed."""
    import re

    doc = (Path(__file__).parents[2] / "docs" / "migrating.md").read_text()
    (recipe,) = [b for b in re.findall(r"```python\n(.*?)```", doc, re.DOTALL) if "flatten" in b]
    Path("config.json").write_text('{"database": {"host": "db", "port": 5432}, "debug": true}')
    exec(compile(recipe, "docs/migrating.md recipe", "exec"), {})
    with keyshelf.open("file://", path="kv_store.json") as kv:
        assert kv.dump() == {"database.host": "db", "database.port": 5432, "debug": True}
