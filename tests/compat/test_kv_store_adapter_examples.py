"""Every ```python example of kv-store-adapter's README runs against its keyshelf facade.

The examples are read from a copy of that document (``examples.py``) and run as
written. What a test changes is listed in its substitutions, and is only:

* the import lines: ``from kv_store_adapter.`` -> ``from keyshelf.compat.kv_store_adapter.``;
* placeholders the document leaves to the reader: the directories
  ``/path/to/data`` and ``/my/data/path`` (a temporary directory), and the
  Redis server (``localhost:6379``, ``redis.example.com``: the test servers;
  the password ``secret`` is kept, on a throwaway server that takes it);
* time: ``time.sleep(31)`` would make the test wait 31 s. On the memory and
  disk stores the store runs on a fake clock and the example's
  ``import time`` line becomes ``time = <a fake time module>`` whose
  ``sleep`` moves that clock; Redis expires keys by the server's own clock,
  so there ``ttl=30`` becomes ``ttl=1`` and ``time.sleep(31)`` ``time.sleep(1.2)``;
* per store: the examples that use ``store`` without creating it get each
  store in turn; the constructor calls of "Quick Start" and "Working with
  Namespaces" are replaced by each store in turn, in addition to running
  once as written.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keyshelf.compat.kv_store_adapter import DiskKVStore, MemoryKVStore, RedisKVStore
from keyshelf.compat.kv_store_adapter.protocol import KVStoreProtocol

from ..conftest import FakeClock
from .examples import blocks
from .runner import Substitutions, example, run_sync

IMPORT: Substitutions = [("from kv_store_adapter.", "from keyshelf.compat.kv_store_adapter.")]
QUICK_START_STORES = (
    "MemoryKVStore()",
    'DiskKVStore("/path/to/data")',
    'RedisKVStore(host="localhost", port=6379)',
)


class FakeTime:
    """Stands for the ``time`` module: ``sleep`` moves the store's clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)


class StoreUnderTest:
    def __init__(self, name: str, make: Callable[[], Any], clock: FakeClock | None) -> None:
        self.name, self.make, self.clock = name, make, clock


@pytest.fixture(params=["memory", "disk", "redis"])
def under_test(
    request: pytest.FixtureRequest, tmp_path: Path, opened: list[Any]
) -> Iterator[StoreUnderTest]:
    """Each store of kv-store-adapter (memory and disk on a fake clock)."""
    name = str(request.param)
    if name == "redis":
        request.getfixturevalue("redis_defaults")
        yield StoreUnderTest(name, RedisKVStore, None)
        return
    clock = FakeClock()
    if name == "memory":
        yield StoreUnderTest(name, lambda: MemoryKVStore(clock=clock), clock)
    else:
        yield StoreUnderTest(name, lambda: DiskKVStore(tmp_path / "data", clock=clock), clock)


def run(name: str, subs: Substitutions, **placeholders: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "seed_example", **placeholders}
    code = example("003", name).code
    imports = [*IMPORT] if "from kv_store_adapter." in code else []
    run_sync(example("003", name), namespace, [*imports, *subs])
    return namespace


def test_every_example_is_run() -> None:
    assert set(blocks("003")) == {
        "Quick Start",
        "Working with Namespaces",
        "TTL and Expiration",
        "Error Handling",
        "Disk Store Persistence",
        "Redis Store Configuration",
        "Protocol Interface",
    }


def check_quick_start(ns: dict[str, Any], out: str) -> None:
    assert ns["user"] == {"name": "Alice", "age": 30}
    assert out == "{'name': 'Alice', 'age': 30}\n"
    assert ns["config"] == "production"
    assert ns["users"] == ["user:1", "user:2"]
    assert ns["store"].get("config", namespace="test") == "debug"
    assert 3599 < ns["store"].ttl("session:abc") <= 3600.001


def test_quick_start_as_written(
    tmp_path: Path,
    redis_defaults: dict[str, Any],
    opened: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    host, port = redis_defaults["host"], redis_defaults["port"]
    ns = run(
        "Quick Start",
        [
            ("/path/to/data", str(tmp_path / "path/to/data")),
            ('host="localhost", port=6379', f'host="{host}", port={port}'),
        ],
    )
    assert isinstance(ns["store"], RedisKVStore)
    check_quick_start(ns, capsys.readouterr().out)
    assert (tmp_path / "path/to/data/kv.db").exists()


def test_quick_start(under_test: StoreUnderTest, capsys: pytest.CaptureFixture[str]) -> None:
    subs = [(constructor, "make_store()") for constructor in QUICK_START_STORES]
    ns = run("Quick Start", subs, make_store=under_test.make)
    check_quick_start(ns, capsys.readouterr().out)


def check_namespaces(ns: dict[str, Any], out: str) -> None:
    assert ns["user1_settings"] == {"theme": "dark"}
    assert ns["temp_keys"] == ["cache"]
    # Sorted, where the document's comment shows ['user:1', 'user:2', 'temp'].
    assert ns["namespaces"] == ["temp", "user:1", "user:2"]
    assert out == "['temp', 'user:1', 'user:2']\n"
    assert ns["cleared_count"] == 1
    assert ns["store"].list_namespaces() == ["user:1", "user:2"]


def test_namespaces_as_written(opened: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    ns = run("Working with Namespaces", [])
    check_namespaces(ns, capsys.readouterr().out)


def test_namespaces(under_test: StoreUnderTest, capsys: pytest.CaptureFixture[str]) -> None:
    ns = run(
        "Working with Namespaces", [("MemoryKVStore()", "make_store()")], make_store=under_test.make
    )
    check_namespaces(ns, capsys.readouterr().out)


def test_ttl_and_expiration(under_test: StoreUnderTest, capsys: pytest.CaptureFixture[str]) -> None:
    store = under_test.make()
    if under_test.clock is not None:
        subs = [("import time\n", "time = fake_time\n")]
        ns = run("TTL and Expiration", subs, store=store, fake_time=FakeTime(under_test.clock))
        assert capsys.readouterr().out == "Session expires in 30.00 seconds\n"
    else:  # the server's clock: a short TTL instead of a 31 s wait
        subs = [("ttl=30)", "ttl=1)"), ("time.sleep(31)", "time.sleep(1.2)")]
        ns = run("TTL and Expiration", subs, store=store)
        assert capsys.readouterr().out in (
            "Session expires in 1.00 seconds\n",
            "Session expires in 0.99 seconds\n",
        )
    assert ns["exists"] is False
    assert store.exists("cache")  # 15 minutes
    assert store.ttl("session") is None


def test_error_handling(under_test: StoreUnderTest, capsys: pytest.CaptureFixture[str]) -> None:
    ns = run("Error Handling", [], store=under_test.make())
    assert capsys.readouterr().out == (
        "Key not found: Key 'nonexistent_key' not found in namespace 'default'\n"
        "Key does not exist\n"
    )
    assert "value" not in ns


def test_disk_store_persistence(tmp_path: Path, opened: list[Any]) -> None:
    ns = run("Disk Store Persistence", [("/my/data/path", str(tmp_path / "my/data/path"))])
    assert ns["value"] == "persistent_value"
    assert ns["store1"].store is not ns["store2"].store


def test_redis_store_configuration(
    redis_defaults: dict[str, Any], password_redis: dict[str, Any], opened: list[Any]
) -> None:
    # RedisKVStore() reaches the test server through DEFAULT_OPTIONS; the
    # custom configuration's server is a throwaway that takes "secret".
    ns = run(
        "Redis Store Configuration",
        [
            ('host="redis.example.com"', f'host="{password_redis["host"]}"'),
            ("port=6379", f"port={password_redis['port']}"),
        ],
    )
    ns["store"].set("k", "v")
    assert ns["store"].get("k") == "v"
    import redis

    client = redis.Redis(port=password_redis["port"], password="secret", db=1)
    try:
        assert client.keys("*")  # db=1 was used
    finally:
        client.close()


def test_protocol_interface() -> None:
    """The document's ABC, run as written, is the facade's: same methods and parameters."""
    ns = run("Protocol Interface", [])
    documented = ns["KVStoreProtocol"]
    assert documented.__abstractmethods__ == KVStoreProtocol.__abstractmethods__
    for name in documented.__abstractmethods__:
        expected = inspect.signature(getattr(documented, name))
        for cls in (KVStoreProtocol, MemoryKVStore, DiskKVStore, RedisKVStore):
            actual = inspect.signature(getattr(cls, name))
            assert [(p.name, p.default) for p in actual.parameters.values()] == [
                (p.name, p.default) for p in expected.parameters.values()
            ], (cls, name)
    for cls in (MemoryKVStore, DiskKVStore, RedisKVStore):
        assert issubclass(cls, KVStoreProtocol)
        assert not cls.__abstractmethods__
