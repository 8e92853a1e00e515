"""The in-process backend (``memory://``): fast, thread-safe, forgets on exit.

Records are immutable tuples of encoded payloads, so neither the object a
caller passed to ``set`` nor the one ``get`` returned can change what is
stored. Reads take no lock (a dict lookup of an immutable record is atomic
under the GIL); every write holds one lock, which makes each operation atomic
across threads. Expiry is checked on access; a heap of expiry instants lets
``purge_expired`` remove expired keys without scanning the live ones.

Listings walk a sorted list of each namespace's keys, built by the first
listing and then kept current by merging in the keys added since (recorded by
the writes), so a stream of pages costs one sort and a binary search per page,
not a sort of the whole namespace per page.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import SplitResult

from ..codec import TAG_INT, payload_size
from ..errors import InvalidURLError, StoreClosedError, StoreNotFoundError
from ..options import as_bool, refuse_unknown
from ..patterns import Matcher, compile_pattern
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


class _Order:
    """The sorted keys of one namespace, for listings.

    ``keys`` is sorted and may still hold deleted keys (a listing checks each
    key against the table) and, after a merge, a key twice in a row (deleted
    and added again); it is None while the first sort runs. ``added`` holds
    the keys created since ``keys`` was taken. A published ``keys`` list is
    never changed (a merge makes a new one), so listings read it unlocked.
    """

    __slots__ = ("added", "keys")

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self.added: set[str] = set()


class MemoryBackend(Backend):
    """One private in-memory store; namespace views share it."""

    location = "memory://"

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Record]] = {}
        self._lock = threading.RLock()
        # (expires_at, ns, key); entries may be stale and are checked on pop.
        self._expiries: list[tuple[int, str, str]] = []
        # Sorted keys per namespace, for listings (see _sorted_keys).
        self._orders: dict[str, _Order] = {}
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
        if self._orders and key not in table:
            self._note_new(ns, key)
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
            if self._orders and key not in table:
                self._note_new(ns, key)
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

    # -- listings -----------------------------------------------------------

    def _note_new(self, ns: str, key: str) -> None:
        """Record a key created in ``ns`` since its sorted order was taken (lock held)."""
        order = self._orders.get(ns)
        if order is None:
            return
        order.added.add(key)
        # Far more new keys than sorted ones: sorting afresh on the next
        # listing is as cheap as merging, and stops the set from growing.
        if order.keys is not None and len(order.added) > max(len(order.keys), 1024):
            del self._orders[ns]

    def _sorted_keys(self, ns: str, table: dict[str, Record]) -> list[str]:
        """Every key of ``ns`` in code-point order (plus, possibly, deleted ones).

        The first listing of a namespace sorts it once, outside the lock (so
        writers are not held up), while the writes record the keys they
        create; later listings merge only those new keys in (two sorted runs:
        linear) instead of sorting the namespace again.
        """
        with self._lock:
            if self._closed:
                raise StoreClosedError("The store is closed")
            order = self._orders.get(ns)
            # Rebuild once deleted keys make up most of the list.
            if order is not None and order.keys is not None:
                if len(order.keys) <= 2 * len(table) + 1024:
                    if order.added:
                        merged = order.keys + sorted(order.added)
                        merged.sort()  # two sorted runs: timsort merges them in linear time
                        order.keys, order.added = merged, set()
                    return order.keys
                order = None
            mine = order is None
            if mine:
                order = self._orders[ns] = _Order()
            snapshot = list(table)
        keys = sorted(snapshot)
        if not mine:  # another listing is building the order: use this sort once
            return keys
        with self._lock:
            assert order is not None
            if self._orders.get(ns) is order and order.keys is None:
                if order.added:  # created while we sorted
                    keys += sorted(order.added)
                    keys.sort()
                order.keys, order.added = keys, set()
        return keys

    def _walk(
        self, ns: str, matcher: Matcher, now: int, after: str | None
    ) -> Iterator[tuple[str, Record]]:
        """Live (key, record) pairs matching ``matcher`` in order, strictly after ``after``.

        Starts with a binary search at the larger of the prefix and ``after``
        and stops at the end of the prefix range: a page costs O(log n) plus
        the keys it walks, whatever page of the stream it is.
        """
        table = self._table(ns)
        prefix = matcher.prefix
        if matcher.literal:
            record = self._live(table, prefix, now)
            if record is not None and (after is None or prefix > after):
                yield prefix, record
            return
        order = self._sorted_keys(ns, table)
        start = bisect_left(order, prefix) if prefix else 0
        if after is not None:
            start = max(start, bisect_right(order, after))
        # A range of the prefix needs no further test for these patterns.
        test = None if matcher.match_all or matcher.prefix_only else matcher.match
        previous = None
        for key in itertools.islice(order, start, None):
            if prefix and not key.startswith(prefix):
                return
            if key == previous:  # deleted and created again since the sort
                continue
            previous = key
            record = table.get(key)
            if record is None:  # deleted since the sort
                continue
            expires = record.expires_at
            if (expires is None or expires > now) and (test is None or test(key)):
                yield key, record

    def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        if limit is not None and limit <= 0:
            return []
        walk = self._walk(ns, matcher, now, after)
        if limit is not None:
            walk = itertools.islice(walk, limit)
        if not values:
            return [(key, None) for key, _ in walk]
        return [(key, (record.tag, record.payload)) for key, record in walk]

    def count(self, ns: str, matcher: Matcher, now: int) -> int:
        if matcher.match_all:
            return sum(
                1
                for record in list(self._table(ns).values())
                if record.expires_at is None or record.expires_at > now
            )
        return sum(1 for _ in self._walk(ns, matcher, now, None))

    def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        with self._lock:
            table = self._table(ns)
            if matcher.match_all:
                live = sum(1 for r in table.values() if r.expires_at is None or r.expires_at > now)
                table.clear()
                self._orders.pop(ns, None)  # every key of its order is gone
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
        # The sorted walk: a page of an export costs its own keys, not the namespace.
        return list(itertools.islice(self._walk(ns, _ALL, now, after), max(limit, 0)))

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
            self._orders.clear()


# Every key (the default dialect's "*"), for scan_records.
_ALL = compile_pattern("*")


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``memory://``: every call makes a new, private store.

    ``create=False`` raises :class:`StoreNotFoundError`: a memory store is
    always new, so there is never an existing one to open. ``readonly=True``
    raises :class:`InvalidURLError`: a new memory store is empty and nothing
    else can write to it, so a read-only one could never hold anything.
    """
    if url.netloc or url.path not in ("", "/"):
        raise InvalidURLError(f"memory:// takes no host or path, got {url.geturl()!r}")
    create_new = as_bool("create", options.pop("create", True))
    readonly = as_bool("readonly", options.pop("readonly", False))
    refuse_unknown("memory", options)
    if readonly:
        raise InvalidURLError(
            "memory:// cannot be opened readonly=True: every memory store starts empty "
            "and only its own writes could fill it"
        )
    if not create_new:
        raise StoreNotFoundError(
            "memory:// with create=False: a memory store is always new, so there is no "
            "existing store to open"
        )
    backend = MemoryBackend()
    # Memory calls never block, so the async API runs them inline.
    return AsyncBridge(backend) if asynchronous else backend
