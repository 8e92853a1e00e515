"""The in-process backend (``memory://``): fast, thread-safe, forgets on exit.

Records are immutable tuples of encoded payloads, so neither the object a
caller passed to ``set`` nor the one ``get`` returned can change what is
stored. Single-key reads take no lock (a dict lookup of an immutable record
is atomic under the GIL); every write, listing and whole-namespace count
holds one lock, which makes each operation atomic across threads. Expiry is
checked on access; a heap of expiry instants lets ``purge_expired`` remove
expired keys without scanning the live ones.

Each namespace is a :class:`~._table.RecordTable`, the record table the file
backend uses too: its sorted index is built by the first listing and kept
current by every write, so a page of a listing costs a binary search plus the
keys it walks, never a sort.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import SplitResult

from ..changes import Change
from ..codec import TAG_INT
from ..errors import InvalidURLError, StoreClosedError, StoreNotFoundError
from ..options import as_bool, refuse_unknown
from ..patterns import Matcher
from ..records import (
    DELETE,
    INT64_MAX,
    INT64_MIN,
    Decision,
    Keep,
    MultiDecision,
    R,
    Record,
    Value,
    Write,
    new_record,
)
from ._bounds import take_limits
from ._changelog import ChangeLog, TableFeed
from ._feed_bridge import FeedBridge
from ._table import RecordTable, decide_many, live_namespaces
from .base import Backend

#: ``_new(Record, fields)`` builds the very object ``Record(*fields)`` does
#: (fields in ``Record``'s order) in half the time: the named tuple's
#: ``__new__`` is a Python-level function, this is the C one it calls.
_new: Any = tuple.__new__

#: The expiry heap is never rebuilt below this many entries.
_EXPIRIES_FLOOR = 4096


class MemoryBackend(Backend):
    """One private in-memory store; namespace views share it."""

    location = "memory://"
    multi_key_atomic = True
    change_feed = True

    def __init__(self) -> None:
        self._data: dict[str, RecordTable] = {}
        self._lock = threading.RLock()
        # (expires_at, ns, key); entries may be stale and are checked on pop.
        self._expiries: list[tuple[int, str, str]] = []
        # Beyond this many entries the heap is rebuilt from the records (see
        # _compact_expiries): rewriting a key with a TTL leaves a stale entry.
        self._expiries_limit = _EXPIRIES_FLOOR
        self._closed = False
        # The change feed (docs/changes.md): off until enable_changes; its
        # condition shares the store's lock, under which every change is recorded.
        self._log = ChangeLog(threading.Condition(self._lock))

    # -- helpers ----------------------------------------------------------

    def _table(self, ns: str) -> RecordTable:
        if self._closed:
            raise StoreClosedError("The store is closed")
        table = self._data.get(ns)
        if table is None:
            with self._lock:
                table = self._data.get(ns)
                if table is None:
                    table = self._data[ns] = RecordTable()
                    if self._log.enabled:
                        table.feed = TableFeed(self._log, ns)
        return table

    def _store(self, ns: str, table: RecordTable, key: str, record: Record) -> None:
        table.put(key, record)
        if record.expires_at is not None:
            self._push_expiry(record.expires_at, ns, key)

    def _push_expiry(self, expires_at: int, ns: str, key: str) -> None:
        """Add an expiry entry (under the lock).

        The heap's rule: every stored record with an expiry has an entry at
        or before it, so ``purge_expired`` meets the record no later than
        when it expires. Any write may push one (never wrong); ``put`` skips
        it when the record it replaces had an expiry no later than the new
        one (a refreshed session: no heap work on most writes), and
        :meth:`_purge` moves an entry that comes due before its record's
        expiry to that expiry.
        """
        heapq.heappush(self._expiries, (expires_at, ns, key))
        if len(self._expiries) > self._expiries_limit:
            self._compact_expiries()

    def _compact_expiries(self) -> None:
        """Rebuild the expiry heap from its own entries (under the lock).

        Writes leave stale entries behind (a key rewritten with an earlier
        expiry, removed or persisted) that only ``purge_expired`` pops, once
        due: a store whose keys keep changing their expiry would otherwise
        hold one entry per write, not per key. Each key met in the heap whose
        record has an expiry keeps one entry, at that very expiry (expired
        ones included: ``purge_expired`` still removes them); by the heap's
        rule (:meth:`_push_expiry`) every such record has an entry to be met
        by. The work is O(heap), never O(keys of the store), and the next
        compaction waits until the heap has doubled: amortised, a constant
        per write.
        """
        data = self._data
        seen: set[tuple[str, str]] = set()
        heap: list[tuple[int, str, str]] = []
        for _, ns, key in self._expiries:
            table = data.get(ns)
            record = None if table is None else table.records.get(key)
            if record is not None and record.expires_at is not None and (ns, key) not in seen:
                seen.add((ns, key))
                heap.append((record.expires_at, ns, key))
        heapq.heapify(heap)
        self._expiries[:] = heap
        self._expiries_limit = max(_EXPIRIES_FLOOR, 2 * len(heap))

    # -- primitives -------------------------------------------------------

    def get(self, ns: str, key: str, now: int) -> Value | None:
        # _table and RecordTable.live inlined: the hottest path of the backend.
        table = self._data.get(ns)
        record = (self._table(ns) if table is None else table).records.get(key)
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
        # records.decide_put, new_record, RecordTable.live and RecordTable.put,
        # inlined under the lock: the hottest write of the backend. The stored
        # record is unpacked once (a named tuple's fields are descriptor reads).
        lock = self._lock
        lock.acquire()  # not `with`: its special-method calls cost ~0.15 µs a set
        try:
            table = self._data.get(ns)
            if table is None:  # also after close(), which empties _data: _table raises
                table = self._table(ns)
            records = table.records
            stored = records.get(key)
            old_expires = None if stored is None else stored[2]
            if stored is None or (old_expires is not None and old_expires <= now):
                # Absent or expired (absent, as RecordTable.live has it): a fresh record.
                if xx:
                    return False
                stored_meta = None if type(meta) is Keep else meta
                record = _new(Record, (value[0], value[1], expires_at, stored_meta, now, now, 1))
            else:
                _, _, _, old_meta, created, _, version = stored
                if nx:
                    return False
                if keep_ttl:
                    expires_at = old_expires
                if type(meta) is Keep:
                    meta = old_meta
                record = _new(
                    Record, (value[0], value[1], expires_at, meta, created, now, version + 1)
                )
            if stored is not None and table.watch is None and table.feed is None:
                records[key] = record  # a replaced key: no hook to run, the index has it
            else:
                table.put(key, record)
            # The heap already holds an entry at or before old_expires for this
            # key (see _purge): a later or equal expiry needs no new one.
            if expires_at is not None and (old_expires is None or expires_at < old_expires):
                self._push_expiry(expires_at, ns, key)
        finally:
            lock.release()
        return True

    def increment(self, ns: str, key: str, delta: int | float, now: int) -> int | float:
        # Fast path: a live 64-bit int plus an int delta that stays in range
        # (the expiry is unchanged, so its heap entry stays valid); anything
        # else runs the shared decision.
        if type(delta) is int:
            with self._lock:
                table = self._table(ns)
                old = table.live(key, now)
                if old is not None and old.tag == TAG_INT:
                    result = old.payload + delta  # type: ignore[operator]
                    if INT64_MIN <= result <= INT64_MAX:
                        table.put(
                            key,
                            Record(
                                TAG_INT,
                                result,
                                old.expires_at,
                                old.meta,
                                old.created_at,
                                now,
                                old.version + 1,
                            ),
                        )
                        return result
        return super().increment(ns, key, delta, now)

    def get_record(self, ns: str, key: str, now: int) -> Record | None:
        return self._table(ns).live(key, now)

    def exists(self, ns: str, key: str, now: int) -> bool:
        return self._table(ns).live(key, now) is not None

    def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        table = self._table(ns)
        found: dict[str, Value] = {}
        for key in keys:
            record = table.live(key, now)
            if record is not None:
                found[key] = (record.tag, record.payload)
        return found

    def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        with self._lock:
            table = self._table(ns)
            old = table.live(key, now)
            write, result = decide(old)
            if isinstance(write, Write):
                self._store(ns, table, key, new_record(write, old, now))
            elif write is DELETE:
                table.remove(key)  # its expiry heap entry, if any, is skipped when due
            return result

    def update_many(self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]) -> R:
        with self._lock:
            table = self._table(ns)
            changes, result = decide_many(lambda key: table.live(key, now), keys, now, decide)
            # One revision for every change of the commit.
            with self._log.group():
                for key, record in changes:
                    if record is None:
                        table.remove(key)
                    else:
                        self._store(ns, table, key, record)
            return result

    def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        # RecordTable.live and .put inlined as in put(): one batch runs this per key.
        with self._lock:
            table = self._table(ns)
            records = table.records
            hooked = table.watch is not None or table.feed is not None
            for key, (tag, payload) in items:
                stored = records.get(key)
                old = stored
                if old is not None and old.expires_at is not None and old.expires_at <= now:
                    old = None
                if old is None:
                    record = _new(Record, (tag, payload, expires_at, None, now, now, 1))
                else:
                    record = _new(
                        Record,
                        (tag, payload, expires_at, old.meta, old.created_at, now, old.version + 1),
                    )
                if stored is None or hooked:
                    table.put(key, record)
                else:
                    records[key] = record  # a replaced key: no hook to run, the index has it
                if expires_at is not None:
                    heapq.heappush(self._expiries, (expires_at, ns, key))
            if expires_at is not None and len(self._expiries) > self._expiries_limit:
                self._compact_expiries()

    def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        removed: list[str] = []
        with self._lock:
            table = self._table(ns)
            for key in keys:
                record = table.remove(key)
                if record is not None and (record.expires_at is None or record.expires_at > now):
                    removed.append(key)
        return removed

    def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        with self._lock:
            table = self._table(ns)
            old = table.live(key, now)
            if old is None or (expires_at is None and old.expires_at is None):
                return False
            self._store(ns, table, key, old._replace(expires_at=expires_at))
            return True

    # -- listings -----------------------------------------------------------

    def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        with self._lock:
            return self._table(ns).scan(matcher, now, after, limit, values)

    def scan_records(
        self, ns: str, now: int, after: str | None, limit: int
    ) -> list[tuple[str, Record]]:
        with self._lock:
            return self._table(ns).scan_records(now, after, limit)

    def count(self, ns: str, matcher: Matcher, now: int) -> int:
        with self._lock:
            return self._table(ns).count(matcher, now)

    def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        # Heap entries of the removed keys go stale; purge_expired skips them.
        with self._lock:
            return self._table(ns).remove_matching(matcher, now)[1]

    def namespaces(self, now: int) -> list[str]:
        with self._lock:
            return live_namespaces(self._data, now)

    def purge_expired(self, ns: str | None, now: int) -> int:
        with self._lock:
            if self._closed:
                raise StoreClosedError("The store is closed")
            heap = self._expiries
            keep: list[tuple[int, str, str]] = []
            self._log.expiring = True  # removals here are "expire" changes
            try:
                removed = self._purge(heap, keep, ns, now)
            finally:
                self._log.expiring = False
            for item in keep:
                heapq.heappush(heap, item)
        return removed

    def _purge(
        self,
        heap: list[tuple[int, str, str]],
        keep: list[tuple[int, str, str]],
        ns: str | None,
        now: int,
    ) -> int:
        """Pop the due expiry entries (under the lock); remove the records expired by now.

        An entry that comes due before its record's expiry (the key was
        rewritten with a later one, see :meth:`_push_expiry`) is kept, moved
        to that expiry.
        """
        removed = 0
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            _, space, key = entry
            if ns is not None and space != ns:
                keep.append(entry)
                continue
            table = self._data.get(space)
            record = None if table is None else table.records.get(key)
            if record is None or record.expires_at is None:
                continue  # removed, or persisted: a stale entry
            if record.expires_at <= now:
                table.remove(key)  # type: ignore[union-attr]
                removed += 1
            else:
                keep.append((record.expires_at, space, key))
        return removed

    def stats(self, ns: str, now: int) -> dict[str, Any]:
        with self._lock:
            return self._table(ns).stats(now)

    def total_size(self, ns: str, now: int) -> int:
        with self._lock:
            return self._table(ns).total_size(now)

    def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        with self._lock:
            table = self._table(ns)
            for key, write in items:
                self._store(ns, table, key, new_record(write, table.live(key, now), now))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._data.clear()
            self._expiries.clear()
            self._log.close()  # wakes every waiting watcher, which then finds the store closed

    # -- change feed (docs/changes.md) ---------------------------------------------

    def _open_log(self) -> ChangeLog:
        if self._closed:
            raise StoreClosedError("The store is closed")
        return self._log

    def enable_changes(self, history_count: int | None, history_ms: int | None) -> None:
        with self._lock:
            log = self._open_log()
            log.enable(history_count, history_ms)
            for ns, table in self._data.items():
                if table.feed is None:
                    table.feed = TableFeed(log, ns)

    def changes_enabled(self) -> bool:
        return self._open_log().enabled

    def revision(self, now: int, ns: str | None = None) -> int:
        return self._open_log().revision

    def changes(self, ns: str | None, after: int, limit: int, now: int) -> list[Change]:
        with self._lock:
            return self._open_log().read(ns, after, limit)

    def wait_changes(self, after: int, timeout: float, ns: str | None = None) -> None:
        with self._lock:
            if not self._closed and self._log.revision <= after:
                self._log.condition.wait(timeout)

    def add_feed_listener(self, listener: Any) -> Any:
        """See :meth:`ChangeLog.add_listener` (used by the async bridge)."""
        with self._lock:
            return self._open_log().add_listener(listener)


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
    limits = take_limits(options)
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
    if limits is None:
        backend = MemoryBackend()
    else:
        from ._memory_bounds import BoundedMemoryBackend  # imports this module

        backend = BoundedMemoryBackend(limits)
    # Memory calls never block, so the async API runs them inline (and waits
    # for changes on the loop: FeedBridge).
    return FeedBridge(backend) if asynchronous else backend
