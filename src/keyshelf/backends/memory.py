"""The in-process backend (``memory://``): fast, thread-safe, forgets on exit.

Records are immutable tuples of encoded payloads, so neither the object a
caller passed to ``set`` nor the one ``get`` returned can change what is
stored. Reads take no lock (a dict lookup of an immutable record is atomic
under the GIL); every write holds one lock, which makes each operation atomic
across threads. Expiry is checked on access; a heap of expiry instants lets
``purge_expired`` remove expired keys without scanning the live ones.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import SplitResult

from ..codec import TAG_INT, payload_size
from ..errors import InvalidURLError, StoreClosedError
from ..options import refuse_unknown
from ..patterns import Matcher
from ..records import (
    INT64_MAX,
    INT64_MIN,
    Decision,
    Keep,
    R,
    Record,
    Value,
    Write,
    new_record,
    stats_dict,
)
from ._bridge import AsyncBridge
from .base import Backend


class MemoryBackend(Backend):
    """One private in-memory store; namespace views share it."""

    location = "memory://"

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Record]] = {}
        self._lock = threading.RLock()
        # (expires_at, ns, key); entries may be stale and are checked on pop.
        self._expiries: list[tuple[int, str, str]] = []
        self._closed = False

    # -- helpers ----------------------------------------------------------

    def _table(self, ns: str) -> dict[str, Record]:
        if self._closed:
            raise StoreClosedError("The store is closed")
        table = self._data.get(ns)
        if table is None:
            table = self._data.setdefault(ns, {})
        return table

    def _live(self, table: dict[str, Record], key: str, now: int) -> Record | None:
        record = table.get(key)
        if record is None:
            return None
        expires = record.expires_at
        if expires is not None and expires <= now:
            return None
        return record

    def _store(self, ns: str, table: dict[str, Record], key: str, record: Record) -> None:
        table[key] = record
        if record.expires_at is not None:
            heapq.heappush(self._expiries, (record.expires_at, ns, key))

    # -- primitives -------------------------------------------------------

    def get(self, ns: str, key: str, now: int) -> Value | None:
        # _live and _table inlined: this is the hottest path of the backend.
        table = self._data.get(ns)
        record = (self._table(ns) if table is None else table).get(key)
        if record is None:
            return None
        expires = record.expires_at
        if expires is not None and expires <= now:
            return None
        return record.tag, record.payload

    def put(
        self,
        ns: str,
        key: str,
        value: Value,
        expires_at: int | None,
        meta: Any,
        now: int,
        *,
        nx: bool = False,
        xx: bool = False,
        keep_ttl: bool = False,
    ) -> bool:
        # records.decide_put and new_record, inlined under the lock.
        with self._lock:
            table = self._table(ns)
            old = self._live(table, key, now)
            if old is None:
                if xx:
                    return False
                stored_meta = None if type(meta) is Keep else meta
                record = Record(value[0], value[1], expires_at, stored_meta, now, now, 1)
            else:
                if nx:
                    return False
                record = Record(
                    value[0],
                    value[1],
                    old.expires_at if keep_ttl else expires_at,
                    old.meta if type(meta) is Keep else meta,
                    old.created_at,
                    now,
                    old.version + 1,
                )
            table[key] = record
            if record.expires_at is not None:
                heapq.heappush(self._expiries, (record.expires_at, ns, key))
        return True

    def increment(self, ns: str, key: str, delta: int | float, now: int) -> int | float:
        # Fast path: a live 64-bit int plus an int delta that stays in range
        # (the expiry is unchanged, so its heap entry stays valid); anything
        # else runs the shared decision.
        if type(delta) is int:
            with self._lock:
                old = self._live(self._table(ns), key, now)
                if old is not None and old.tag == TAG_INT:
                    result = old.payload + delta  # type: ignore[operator]
                    if INT64_MIN <= result <= INT64_MAX:
                        self._data[ns][key] = Record(
                            TAG_INT,
                            result,
                            old.expires_at,
                            old.meta,
                            old.created_at,
                            now,
                            old.version + 1,
                        )
                        return result
        return super().increment(ns, key, delta, now)

    def get_record(self, ns: str, key: str, now: int) -> Record | None:
        return self._live(self._table(ns), key, now)

    def exists(self, ns: str, key: str, now: int) -> bool:
        return self._live(self._table(ns), key, now) is not None

    def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        table = self._table(ns)
        found: dict[str, Value] = {}
        for key in keys:
            record = self._live(table, key, now)
            if record is not None:
                found[key] = (record.tag, record.payload)
        return found

    def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        with self._lock:
            table = self._table(ns)
            old = self._live(table, key, now)
            write, result = decide(old)
            if write is not None:
                self._store(ns, table, key, new_record(write, old, now))
            return result

    def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        with self._lock:
            table = self._table(ns)
            for key, (tag, payload) in items:
                old = self._live(table, key, now)
                if old is None:
                    record = Record(tag, payload, expires_at, None, now, now, 1)
                else:
                    record = Record(
                        tag, payload, expires_at, old.meta, old.created_at, now, old.version + 1
                    )
                self._store(ns, table, key, record)

    def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        removed: list[str] = []
        with self._lock:
            table = self._table(ns)
            for key in keys:
                record = table.pop(key, None)
                if record is not None and (record.expires_at is None or record.expires_at > now):
                    removed.append(key)
        return removed

    def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        with self._lock:
            table = self._table(ns)
            old = self._live(table, key, now)
            if old is None or (expires_at is None and old.expires_at is None):
                return False
            self._store(ns, table, key, old._replace(expires_at=expires_at))
            return True

    def _matching(self, ns: str, matcher: Matcher, now: int) -> list[str]:
        table = self._table(ns)
        if matcher.literal:
            return [matcher.prefix] if self._live(table, matcher.prefix, now) else []
        match = matcher.match
        prefix = matcher.prefix
        exact = matcher.match_all or matcher.prefix_only  # startswith(prefix) is the test
        # A snapshot of the items: other threads may write while we filter.
        return sorted(
            key
            for key, record in list(table.items())
            if key.startswith(prefix)
            and (record.expires_at is None or record.expires_at > now)
            and (exact or match(key))
        )

    def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        keys = self._matching(ns, matcher, now)
        if after is not None:
            keys = [key for key in keys if key > after]
        if limit is not None:
            keys = keys[:limit]
        if not values:
            return [(key, None) for key in keys]
        table = self._table(ns)
        rows: list[tuple[str, Value | None]] = []
        for key in keys:
            record = table.get(key)
            if record is not None:
                rows.append((key, (record.tag, record.payload)))
        return rows

    def count(self, ns: str, matcher: Matcher, now: int) -> int:
        if matcher.match_all:
            return sum(
                1
                for record in list(self._table(ns).values())
                if record.expires_at is None or record.expires_at > now
            )
        return len(self._matching(ns, matcher, now))

    def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        with self._lock:
            table = self._table(ns)
            if matcher.match_all:
                live = sum(1 for r in table.values() if r.expires_at is None or r.expires_at > now)
                table.clear()
                return live
            doomed = [key for key in list(table) if matcher.match(key)]
            live = 0
            for key in doomed:
                record = table.pop(key)
                live += record.expires_at is None or record.expires_at > now
            return live

    def namespaces(self, now: int) -> list[str]:
        with self._lock:
            return sorted(
                ns
                for ns, table in self._data.items()
                if any(r.expires_at is None or r.expires_at > now for r in table.values())
            )

    def purge_expired(self, ns: str | None, now: int) -> int:
        removed = 0
        with self._lock:
            if self._closed:
                raise StoreClosedError("The store is closed")
            heap = self._expiries
            keep: list[tuple[int, str, str]] = []
            while heap and heap[0][0] <= now:
                expires, space, key = heapq.heappop(heap)
                if ns is not None and space != ns:
                    keep.append((expires, space, key))
                    continue
                table = self._data.get(space, {})
                record = table.get(key)
                if record is not None and record.expires_at == expires:
                    del table[key]
                    removed += 1
            for item in keep:
                heapq.heappush(heap, item)
        return removed

    def stats(self, ns: str, now: int) -> dict[str, Any]:
        records = list(self._table(ns).values())
        live = [r for r in records if r.expires_at is None or r.expires_at > now]
        with_ttl = sum(1 for r in live if r.expires_at is not None)
        return stats_dict(len(records), len(live), with_ttl)

    def total_size(self, ns: str, now: int) -> int:
        return sum(
            payload_size(r.tag, r.payload)
            for r in list(self._table(ns).values())
            if r.expires_at is None or r.expires_at > now
        )

    def scan_records(
        self, ns: str, now: int, after: str | None, limit: int
    ) -> list[tuple[str, Record]]:
        # A snapshot of the items (other threads may write meanwhile); the
        # smallest ``limit`` keys cost O(n log limit), not a full sort.
        items = list(self._table(ns).items())
        live = {
            key: record
            for key, record in items
            if (record.expires_at is None or record.expires_at > now)
            and (after is None or key > after)
        }
        return [(key, live[key]) for key in heapq.nsmallest(limit, live)]

    def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        with self._lock:
            table = self._table(ns)
            for key, write in items:
                self._store(ns, table, key, new_record(write, self._live(table, key, now), now))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._data.clear()
            self._expiries.clear()


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``memory://``: every call makes a new, private store."""
    if url.netloc or url.path not in ("", "/"):
        raise InvalidURLError(f"memory:// takes no host or path, got {url.geturl()!r}")
    refuse_unknown("memory", options)
    backend = MemoryBackend()
    # Memory calls never block, so the async API runs them inline.
    return AsyncBridge(backend) if asynchronous else backend
