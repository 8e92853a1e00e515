"""The cache tier as an async backend wrapper (source of ``_cache_sync.py``).

``tools/async_to_sync.py`` generates the sync ``CachedBackend`` from this
file; edit this one and run ``make generate``. See :mod:`.cache` for what is
cached and the guarantees. Every write primitive forwards to the wrapped
backend and then invalidates what it touched (in ``finally``: a write that
failed may still have reached the backend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..changes import Change
from ..patterns import Matcher
from ..records import (
    KEEP,
    CommitOutcome,
    Decision,
    Keep,
    Meta,
    MultiDecision,
    Op,
    R,
    Record,
    Value,
    Write,
    commit_keys,
)
from ._base_async import AsyncBackend
from .cache import RecordCache


class AsyncCachedBackend(AsyncBackend):
    """Serves single-key reads from a :class:`RecordCache` in front of ``inner``."""

    def __init__(self, inner: AsyncBackend, cache: RecordCache) -> None:
        self.inner = inner
        self.cache = cache
        self.location = inner.location
        self.multi_key_atomic = inner.multi_key_atomic
        self.change_feed = inner.change_feed
        # Reads this tier answers never reach the backend's get: a backend
        # that ranks reads for eviction (bounded LRU/LFU) hears of each one.
        note_reads = inner.note_reads
        ranks = getattr(note_reads, "__func__", None) is not AsyncBackend.note_reads
        self._note_reads = note_reads if ranks else None

    async def _record(self, ns: str, key: str, now: int) -> Record | None:
        """The live record of ``key``: from the cache, else read through."""
        hit, record = self.cache.lookup(ns, key, now)
        if hit:
            return record
        ticket = self.cache.ticket(ns, key)
        record = await self.inner.get_record(ns, key, now)
        self.cache.fill(ns, key, record, now, ticket)
        return record

    # -- reads served from the cache ----------------------------------------

    async def get(self, ns: str, key: str, now: int) -> Value | None:
        record = await self._record(ns, key, now)
        if record is None:
            return None
        if self._note_reads is not None:
            # Hit or read-through (get_record, which does not rank): a get
            # ranks as one on the backend itself (only get does, not exists).
            self._note_reads(ns, (key,), now)
        return (record.tag, record.payload)

    async def get_record(self, ns: str, key: str, now: int) -> Record | None:
        return await self._record(ns, key, now)

    async def exists(self, ns: str, key: str, now: int) -> bool:
        return await self._record(ns, key, now) is not None

    async def time_left(self, ns: str, key: str, now: int) -> int | None:
        # Not from the cache: the cached expiry is an instant read off this
        # process's clock, and ``ttl()`` must come from the clock that expires
        # the key (the server's, for Redis and PostgreSQL) so that it never
        # reads above the TTL given, and must see another process's expire().
        return await self.inner.time_left(ns, key, now)

    async def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        found: dict[str, Value] = {}
        missing: list[str] = []
        for key in keys:
            hit, record = self.cache.lookup(ns, key, now)
            if not hit:
                missing.append(key)
            elif record is not None:
                found[key] = (record.tag, record.payload)
        if missing:
            # Values alone carry no expiry, so they are returned, not cached.
            found.update(await self.inner.get_many(ns, missing, now))
        return found

    # -- reads that always go to the backend -----------------------------------

    async def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        return await self.inner.scan(ns, matcher, now, after, limit, values)

    async def scan_records(
        self, ns: str, now: int, after: str | None, limit: int
    ) -> list[tuple[str, Record]]:
        # Bulk reads (export, migration) would flush the hot keys: not cached.
        return await self.inner.scan_records(ns, now, after, limit)

    async def count(self, ns: str, matcher: Matcher, now: int) -> int:
        return await self.inner.count(ns, matcher, now)

    async def namespaces(self, now: int) -> list[str]:
        return await self.inner.namespaces(now)

    async def stats(self, ns: str, now: int) -> dict[str, Any]:
        return await self.inner.stats(ns, now)

    async def total_size(self, ns: str, now: int) -> int:
        return await self.inner.total_size(ns, now)

    async def sizes(self, ns: str, keys: Sequence[str], now: int) -> dict[str, int]:
        return await self.inner.sizes(ns, keys, now)

    # -- the change feed: the backend's, uncached ---------------------------------

    async def enable_changes(self, history_count: int | None, history_ms: int | None) -> None:
        await self.inner.enable_changes(history_count, history_ms)

    async def changes_enabled(self) -> bool:
        return await self.inner.changes_enabled()

    async def revision(self, now: int, ns: str | None = None) -> int:
        return await self.inner.revision(now, ns=ns)

    async def changes(self, ns: str | None, after: int, limit: int, now: int) -> list[Change]:
        return await self.inner.changes(ns, after, limit, now)

    async def wait_changes(self, after: int, timeout: float, ns: str | None = None) -> None:
        await self.inner.wait_changes(after, timeout, ns=ns)

    # -- writes: forward, then invalidate ---------------------------------------

    async def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        try:
            return await self.inner.update(ns, key, now, decide)
        finally:
            self.cache.invalidate(ns, (key,))

    async def update_many(
        self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]
    ) -> R:
        try:
            return await self.inner.update_many(ns, keys, now, decide)
        finally:
            self.cache.invalidate(ns, keys)

    async def commit(
        self, ns: str, checks: dict[str, int | None], ops: list[Op], now: int
    ) -> CommitOutcome:
        # The inner backend's own commit (one round trip where it has one);
        # checks are decided there, never against cached records.
        try:
            return await self.inner.commit(ns, checks, ops, now)
        finally:
            self.cache.invalidate(ns, commit_keys({}, ops))

    async def put(
        self,
        ns: str,
        key: str,
        value: Value,
        expires_at: int | None,
        meta: Meta,
        now: int,
        *,
        nx: bool = False,
        xx: bool = False,
        keep_ttl: bool = False,
    ) -> bool:
        try:
            return await self.inner.put(
                ns, key, value, expires_at, meta, now, nx=nx, xx=xx, keep_ttl=keep_ttl
            )
        finally:
            self.cache.invalidate(ns, (key,))

    async def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        try:
            await self.inner.put_many(ns, items, expires_at, now)
        finally:
            self.cache.invalidate(ns, [key for key, _ in items])

    async def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        try:
            await self.inner.put_records(ns, items, now)
        finally:
            self.cache.invalidate(ns, [key for key, _ in items])

    async def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        try:
            return await self.inner.delete(ns, keys, now)
        finally:
            self.cache.invalidate(ns, keys)

    async def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        try:
            return await self.inner.set_expiry(ns, key, expires_at, now)
        finally:
            self.cache.invalidate(ns, (key,))

    async def increment(self, ns: str, key: str, delta: int | float, now: int) -> int | float:
        try:
            return await self.inner.increment(ns, key, delta, now)
        finally:
            self.cache.invalidate(ns, (key,))

    async def append(self, ns: str, key: str, value: Value, now: int, max_size: int) -> Value:
        try:
            return await self.inner.append(ns, key, value, now, max_size)
        finally:
            self.cache.invalidate(ns, (key,))

    async def compare_and_swap(
        self, ns: str, key: str, expected: Value, new: Value, now: int
    ) -> bool:
        try:
            return await self.inner.compare_and_swap(ns, key, expected, new, now)
        finally:
            self.cache.invalidate(ns, (key,))

    async def set_metadata(
        self,
        ns: str,
        key: str,
        merge: Callable[[bytes | None], bytes | None],
        now: int,
        *,
        expires_at: int | Keep | None = KEEP,
    ) -> bool:
        try:
            return await self.inner.set_metadata(ns, key, merge, now, expires_at=expires_at)
        finally:
            self.cache.invalidate(ns, (key,))

    async def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        try:
            return await self.inner.delete_matching(ns, matcher, now)
        finally:
            self.cache.invalidate_matching(ns, matcher)

    async def purge_expired(self, ns: str | None, now: int) -> int:
        # Only expired records go, and the cache never serves those.
        return await self.inner.purge_expired(ns, now)

    async def prepare(self) -> None:
        await self.inner.prepare()

    async def close(self) -> None:
        self.cache.clear()
        await self.inner.close()
