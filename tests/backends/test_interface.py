"""The backend interface: an abstract base class with ten primitives, defaults for the rest."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any

import pytest

import keyshelf
from keyshelf.backends import AsyncBackend, Backend
from keyshelf.backends._bridge import PRIMITIVES, AsyncBridge
from keyshelf.backends.memory import MemoryBackend
from keyshelf.patterns import Matcher
from keyshelf.records import DELETE, Decision, R, Record, Value, Write, new_record

ABSTRACT = {
    "get_record",
    "update",
    "put_many",
    "delete",
    "set_expiry",
    "scan",
    "delete_matching",
    "namespaces",
    "purge_expired",
    "close",
}


def test_the_interface_is_public_and_abstract() -> None:
    assert AsyncBackend.__abstractmethods__ == ABSTRACT
    assert Backend.__abstractmethods__ == ABSTRACT
    for name in ABSTRACT:
        assert inspect.iscoroutinefunction(getattr(AsyncBackend, name))
        assert not inspect.iscoroutinefunction(getattr(Backend, name))
        assert getattr(AsyncBackend, name).__doc__


def test_an_incomplete_backend_cannot_be_built() -> None:
    class Incomplete(Backend):
        def get_record(self, ns: str, key: str, now: int) -> Record | None:
            return None

    with pytest.raises(TypeError, match="abstract") as info:
        Incomplete()  # type: ignore[abstract]
    for name in ABSTRACT - {"get_record"}:
        assert name in str(info.value)

    class IncompleteAsync(AsyncBackend):
        pass

    with pytest.raises(TypeError, match="abstract"):
        IncompleteAsync()  # type: ignore[abstract]


def test_every_shipped_backend_implements_the_primitives() -> None:
    MemoryBackend().close()
    bridge = AsyncBridge(MemoryBackend())
    asyncio.run(bridge.close())


def test_the_bridge_forwards_what_the_interface_declares() -> None:
    # Read from the interface: every public coroutine method but the two the
    # bridge implements itself (close, and prepare: a sync backend is ready).
    declared = {
        name
        for name, member in vars(AsyncBackend).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }
    assert set(PRIMITIVES) == declared - {"close", "prepare"}
    assert ABSTRACT - {"close"} <= set(PRIMITIVES)
    assert not AsyncBridge.__abstractmethods__


class DictBackend(Backend):
    """The smallest backend: the ten primitives over a dict, everything else by default."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Record] = {}
        self.location = "dict"

    def _live(self, ns: str, key: str, now: int) -> Record | None:
        record = self.data.get((ns, key))
        if record is None or (record.expires_at is not None and record.expires_at <= now):
            return None
        return record

    def get_record(self, ns: str, key: str, now: int) -> Record | None:
        return self._live(ns, key, now)

    def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        old = self._live(ns, key, now)
        action, result = decide(old)
        if isinstance(action, Write):
            self.data[ns, key] = new_record(action, old, now)
        elif action is DELETE:
            self.data.pop((ns, key), None)
        return result

    def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        for key, (tag, payload) in items:
            old = self._live(ns, key, now)
            meta = None if old is None else old.meta
            self.data[ns, key] = new_record(Write(tag, payload, expires_at, meta), old, now)

    def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        removed = [key for key in dict.fromkeys(keys) if self._live(ns, key, now)]
        for key in keys:
            self.data.pop((ns, key), None)
        return removed

    def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        old = self._live(ns, key, now)
        if old is None or (expires_at is None and old.expires_at is None):
            return False
        self.data[ns, key] = old._replace(expires_at=expires_at)
        return True

    def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        rows: list[tuple[str, Value | None]] = []
        for (space, key), record in sorted(self.data.items()):
            if space != ns or (after is not None and key <= after) or not matcher.match(key):
                continue
            if self._live(ns, key, now) is None:
                continue
            rows.append((key, (record.tag, record.payload) if values else None))
            if limit is not None and len(rows) == limit:
                break
        return rows

    def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        doomed = [key for space, key in self.data if space == ns and matcher.match(key)]
        return len(self.delete(ns, doomed, now))

    def namespaces(self, now: int) -> list[str]:
        return sorted({ns for ns, key in self.data if self._live(ns, key, now)})

    def purge_expired(self, ns: str | None, now: int) -> int:
        doomed = [
            (space, key)
            for space, key in self.data
            if (ns is None or space == ns) and self._live(space, key, now) is None
        ]
        for item in doomed:
            del self.data[item]
        return len(doomed)

    def close(self) -> None:
        pass


def test_ten_primitives_make_a_working_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # The defaults (get, exists, count, stats, total_size, sizes, the
    # read-modify-write operations ...) give the whole API, through both APIs.
    def factory(url: Any, options: dict[str, Any], asynchronous: bool) -> Any:
        backend = DictBackend()
        return AsyncBridge(backend) if asynchronous else backend

    monkeypatch.setitem(keyshelf.registry._registry, "dicttest", factory)
    now = [1000.0]
    store = keyshelf.open("dicttest://", clock=lambda: now[0])
    store.set("a", 1, ttl=10)
    store.set("b", "xy")
    assert store.get("a") == 1 and store.exists("b")
    assert store.increment("a") == 2
    assert store.append("b", "z") == "xyz"
    assert store.compare_and_swap("b", "xyz", "w") is True
    assert store.set_metadata("b", {"m": 1}) is True
    assert store.key_count() == 2
    assert store.stats() == {
        "total_keys": 2,
        "active_keys": 2,
        "expired_keys": 0,
        "keys_with_ttl": 1,
        "evictions": 0,
    }
    assert store.storage_size("b") == {"b": 1}
    assert store.storage_size()["total"] == sum(store.storage_size("a", "b").values())
    assert store.ttl("a") == 10
    assert store.getdel("a") == 2 and store.exists("a") is False
    store.set("c", 3, ttl=5)
    now[0] += 20
    assert store.keys() == ["b"]
    assert store.delete_expired() == 1
    store.close()

    async def use_async() -> Any:
        async with keyshelf.open_async("dicttest://", clock=lambda: now[0]) as astore:
            await astore.set("k", [1])
            return await astore.getdel("k"), await astore.exists("k")

    assert asyncio.run(use_async()) == ([1], False)
