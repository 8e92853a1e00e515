"""Bounded stores: the ``max_keys`` / ``max_bytes`` / ``eviction`` options and their rules.

A bounded store holds at most ``max_keys`` records and at most ``max_bytes``
bytes of encoded values (:func:`~keyshelf.codec.payload_size`, what
``storage_size`` counts), over every namespace together. Records count until
they are removed, expired ones included (as in ``stats()``'s ``total_keys``).

When a write takes the store above a limit:

* ``"none"``: the write raises :class:`~keyshelf.errors.StoreFullError` and
  changes nothing;
* ``"lru"`` / ``"lfu"`` / ``"fifo"``: the same write evicts the least recently
  used / least frequently used / oldest-inserted records (never the record it
  wrote last: a batch larger than the limit keeps its latest records) until
  the store is back within its limits *with headroom*:
  :func:`key_headroom` keys and :func:`byte_headroom` bytes below the limits.
  The headroom makes eviction amortised: after one eviction, the next
  ``headroom`` new keys evict nothing, so a store under a steady stream of new
  keys pays for one batch of evictions every ``headroom + 1`` writes. The
  limits themselves are never exceeded after a write returns.

A value larger than ``max_bytes`` is refused with
:class:`~keyshelf.errors.ValueTooLargeError` whatever the policy: storing it
would mean evicting everything and still not fit.

This module holds what every backend shares: the options' parsing, the
refusal on backends that cannot bound a store, and :class:`Tracker`, the
in-process accounting of the memory and file backends. The SQLite backend
keeps the same accounting in SQL (:mod:`._sqlite_bounds`).
"""

from __future__ import annotations

import contextlib
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .._show import show
from ..codec import payload_size
from ..errors import InvalidURLError, StoreFullError, ValueTooLargeError
from ..options import as_number
from ..records import Record

#: The eviction policies, by the name ``eviction=`` takes.
POLICIES = ("lru", "lfu", "fifo", "none")

#: At most this many keys of headroom (see :func:`key_headroom`).
MAX_KEY_HEADROOM = 4096
#: The headroom is this fraction of a limit (1/HEADROOM_DIVISOR). Bounded
#: SQLite files carry it in their triggers' SQL: changing it changes their
#: shape, which then needs an upgrade at open (see ``_sqlite_bounds``). An
#: eviction batch costs a scan of the whole SQLite table: 1/8 pays for it
#: over twice as many writes as 1/16 did (shapes 1 and 2).
HEADROOM_DIVISOR = 8

#: The backend primitives that write: a bounded in-process backend wraps each
#: in :meth:`Tracker.write` (nested calls, e.g. ``append`` -> ``update``, count once).
WRITE_METHODS = (
    "put",
    "update",
    "update_many",
    "commit",
    "increment",
    "append",
    "compare_and_swap",
    "set_metadata",
    "put_many",
    "put_records",
    "delete",
    "set_expiry",
    "delete_matching",
    "purge_expired",
)

#: The option names a bounded store takes.
OPTION_NAMES = ("max_keys", "max_bytes", "eviction")

# What to do instead, for the backends that refuse the options.
_INSTEAD = {
    "redis": (
        "bound the Redis server instead: set maxmemory and maxmemory-policy "
        "(allkeys-lru, allkeys-lfu, or noeviction to refuse writes)"
    ),
    "postgresql": (
        "bound the table instead with a scheduled job that deletes the oldest rows "
        "(ORDER BY updated_at), see docs/caching.md"
    ),
    "s3": (
        "bound the bucket instead with an S3 lifecycle rule that expires old objects, "
        "or give keys a ttl"
    ),
}
_REFUSING = {
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "s3": "s3",
}


@dataclass(frozen=True)
class Limits:
    """A store's limits: None means unlimited; ``policy`` is one of :data:`POLICIES`."""

    max_keys: int | None
    max_bytes: int | None
    policy: str

    def stats(self) -> dict[str, Any]:
        """The ``stats()`` entries of the limits (only those that are set)."""
        out: dict[str, Any] = {}
        if self.max_keys is not None:
            out["max_keys"] = self.max_keys
        if self.max_bytes is not None:
            out["max_bytes"] = self.max_bytes
        return out


def key_headroom(max_keys: int) -> int:
    """Keys an eviction frees beyond the limit: ``min(4096, max_keys // 8)``.

    0 for stores of fewer than 8 keys, where every eviction is exact.
    """
    return min(MAX_KEY_HEADROOM, max_keys // HEADROOM_DIVISOR)


def byte_headroom(max_bytes: int) -> int:
    """Bytes an eviction frees below ``max_bytes``: ``max_bytes // 8``."""
    return max_bytes // HEADROOM_DIVISOR


def take_limits(options: dict[str, Any]) -> Limits | None:
    """Pop and check ``max_keys``, ``max_bytes`` and ``eviction``; None if none was given.

    ``eviction`` without a limit is refused (it would bound nothing); the
    default policy with a limit is ``"lru"``.
    """
    max_keys = options.pop("max_keys", None)
    max_bytes = options.pop("max_bytes", None)
    eviction = options.pop("eviction", None)
    if max_keys is not None:
        max_keys = as_number("max_keys", max_keys, integer=True)
    if max_bytes is not None:
        max_bytes = as_number("max_bytes", max_bytes, integer=True)
    if eviction is not None and (not isinstance(eviction, str) or eviction not in POLICIES):
        raise InvalidURLError(
            f"Option eviction must be one of {', '.join(POLICIES)}, got {show(eviction)}"
        )
    if max_keys is None and max_bytes is None:
        if eviction is not None:
            raise InvalidURLError(
                "Option eviction needs a limit: give max_keys= and/or max_bytes= too"
            )
        return None
    return Limits(max_keys, max_bytes, eviction or "lru")


def refuse_limits(scheme: str, options: dict[str, Any]) -> None:
    """Refuse the bounds options on a backend that cannot bound a store, saying what to do."""
    kind = _REFUSING.get(scheme.lower())
    given = [name for name in OPTION_NAMES if name in options]
    if kind is None or not given:
        return
    raise InvalidURLError(
        f"{scheme}:// stores cannot be bounded by keyshelf (option {', '.join(given)}): "
        f"{_INSTEAD[kind]}"
    )


def check_value(limits: Limits, size: int) -> None:
    """Refuse a value that can never fit (``size > max_bytes``)."""
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise ValueTooLargeError(
            f"Value of {size} bytes is larger than the store's max_bytes={limits.max_bytes}"
        )


Slot = tuple[str, str]  # (namespace, key)
PutRecord = Callable[[str, str, Record], None]
RemoveRecord = Callable[[str, str], "Record | None"]


class Tracker:
    """Counts, sizes and eviction order of every record of an in-process store.

    The backend reports each change of a record (:meth:`stored`,
    :meth:`removed`) and each read (:meth:`read`), and wraps each write
    operation in :meth:`write`, which at its end evicts or, under
    ``"none"``, undoes the operation and raises. Not thread-safe: the backend
    calls it under its write lock, except :meth:`read`, whose dict updates
    are atomic under the GIL and tolerate a key evicted meanwhile.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.keys = 0
        self.bytes = 0
        self.evictions = 0
        self._sizes: dict[Slot, int] = {}
        # LRU and FIFO: slots in eviction order (first = next victim).
        self._order: OrderedDict[Slot, None] = OrderedDict()
        # LFU: uses per slot (a write counts as one).
        self._hits: dict[Slot, int] = {}
        # While a write runs: each slot's record before its first change.
        self._journal: dict[Slot, Record | None] | None = None
        self._depth = 0
        self._evicting = False
        self._last: Slot | None = None  # the slot stored last by the running write
        # The limits as numbers, for the check after every write.
        self._max_keys = limits.max_keys if limits.max_keys is not None else float("inf")
        self._max_bytes = limits.max_bytes if limits.max_bytes is not None else float("inf")

    # -- reports from the backend -------------------------------------------------

    def stored(self, ns: str, key: str, old: Record | None, record: Record) -> None:
        """``record`` replaces ``old`` (None: a new key) under ``(ns, key)``."""
        size = payload_size(record.tag, record.payload)
        check_value(self.limits, size)
        slot = (ns, key)
        if self._journal is not None and slot not in self._journal:
            self._journal[slot] = old
        self._last = slot
        previous = self._sizes.get(slot)
        if previous is None:
            self.keys += 1
            self.bytes += size
        else:
            self.bytes += size - previous
        self._sizes[slot] = size
        policy = self.limits.policy
        if policy == "lfu":
            self._hits[slot] = self._hits.get(slot, 0) + 1
        elif policy == "lru" or previous is None:
            self._order[slot] = None
            self._order.move_to_end(slot)
        elif policy == "fifo" and old is not None and record.version == 1:
            # An expired record overwritten: a new insertion.
            self._order.move_to_end(slot)

    def load(self, ns: str, key: str, record: Record) -> None:
        """Count a record already stored (a load), last in the eviction order so far.

        No check: a store loaded above its limits shrinks at its next write.
        LFU counts start at the record's ``version`` (its writes).
        """
        slot = (ns, key)
        size = payload_size(record.tag, record.payload)
        if slot in self._sizes:
            self.bytes -= self._sizes[slot]
            self.keys -= 1
        self._sizes[slot] = size
        self.keys += 1
        self.bytes += size
        if self.limits.policy == "lfu":
            self._hits[slot] = record.version
        else:
            self._order[slot] = None
            self._order.move_to_end(slot)

    def removed(self, ns: str, key: str, old: Record) -> None:
        """The record ``old`` of ``(ns, key)`` was removed."""
        slot = (ns, key)
        if self._journal is not None and slot not in self._journal:
            self._journal[slot] = old
        size = self._sizes.pop(slot, None)
        if size is None:
            return
        self.keys -= 1
        self.bytes -= size
        self._order.pop(slot, None)
        self._hits.pop(slot, None)
        if self._evicting:
            self.evictions += 1

    def read(self, ns: str, key: str) -> None:
        """A read of a live record (LRU: now the most recent; LFU: one more use)."""
        policy = self.limits.policy
        slot = (ns, key)
        try:
            if policy == "lru":
                self._order.move_to_end(slot)
            elif policy == "lfu" and slot in self._hits:
                self._hits[slot] += 1
        except KeyError:
            pass  # evicted or removed since the read found it

    def lru_touch(self) -> Callable[[Slot], None]:
        """The bound ``move_to_end`` of the LRU order: :meth:`read` for LRU, one call."""
        return self._order.move_to_end

    # -- write operations -----------------------------------------------------------

    def over(self) -> bool:
        """True if the store is above a limit."""
        lim = self.limits
        return (lim.max_keys is not None and self.keys > lim.max_keys) or (
            lim.max_bytes is not None and self.bytes > lim.max_bytes
        )

    @contextlib.contextmanager
    def write(self, put: PutRecord, remove: RemoveRecord) -> Iterator[None]:
        """Wrap one write operation of a backend whose records ``put`` and ``remove`` change.

        ``put(ns, key, record)`` stores a record and ``remove(ns, key)``
        removes one (returning it, or None), each reporting to this tracker.

        At the end: within the limits, nothing more; above them, under
        ``"none"`` the operation is undone and StoreFullError raised, else
        records the operation did not write are evicted. An exception inside
        the operation undoes what it had done, so a multi-key write that
        fails half-way (a value too large) changes nothing. (The same as
        :meth:`begin`, :meth:`settle` / :meth:`abort` and :meth:`end`, which a
        hot path calls without a context manager.)
        """
        outermost = self.begin()
        try:
            yield
            if outermost:
                self.settle(remove)
        except BaseException:
            if outermost:
                self.abort(put, remove)
            raise
        finally:
            self.end()

    def begin(self) -> bool:
        """Start a write operation; True if it is the outermost one (it settles)."""
        self._depth += 1
        if self._depth > 1:  # a write operation built on another one
            return False
        self._journal = {}
        self._last = None
        return True

    def settle(self, remove: RemoveRecord) -> None:
        """End of the outermost operation: evict, or raise StoreFullError under "none"."""
        if self.keys <= self._max_keys and self.bytes <= self._max_bytes:
            return
        if self.limits.policy == "none":
            raise StoreFullError(self._full_message())
        # Never the record written last (a batch larger than the limit keeps
        # its latest records, as SQLite's per-row triggers do).
        self._evict(remove, {self._last} if self._last is not None else set())

    def abort(self, put: PutRecord, remove: RemoveRecord) -> None:
        """The outermost operation failed: undo what it changed."""
        self._undo(put, remove)

    def end(self) -> None:
        """Leave a write operation (every :meth:`begin` has one)."""
        self._depth -= 1
        if not self._depth:
            self._journal = None

    def _full_message(self) -> str:
        lim = self.limits
        parts = []
        if lim.max_keys is not None:
            parts.append(f"max_keys={lim.max_keys}")
        if lim.max_bytes is not None:
            parts.append(f"max_bytes={lim.max_bytes}")
        return (
            f"The store is full ({', '.join(parts)}, eviction='none'): the write would "
            f"exceed a limit; nothing was changed"
        )

    def _undo(self, put: PutRecord, remove: RemoveRecord) -> None:
        journal, self._journal = self._journal, None
        if not journal:
            return
        for (ns, key), old in journal.items():
            if old is None:
                remove(ns, key)
            else:
                put(ns, key, old)

    def _victims(self, spare: set[Slot]) -> Iterator[Slot]:
        """Slots in eviction order, never one of ``spare``."""
        if self.limits.policy == "lfu":
            # Amortised by the headroom: one partial sort per batch.
            need = max(1, self.keys - (self.limits.max_keys or self.keys)) + 64
            while True:
                batch = heapq.nsmallest(
                    need + len(spare), self._hits.items(), key=lambda item: item[1]
                )
                found = False
                for slot, _ in batch:
                    if slot not in spare and slot in self._sizes:
                        found = True
                        yield slot
                if not found:
                    return
                need *= 2
        else:
            for slot in list(self._order):
                if slot not in spare:
                    yield slot

    def _evict(self, remove: RemoveRecord, spare: set[Slot]) -> None:
        lim = self.limits
        key_goal = None if lim.max_keys is None else lim.max_keys - key_headroom(lim.max_keys)
        byte_goal = None if lim.max_bytes is None else lim.max_bytes - byte_headroom(lim.max_bytes)
        self._evicting = True
        try:
            for ns, key in self._victims(spare):
                keys_ok = key_goal is None or self.keys <= key_goal
                bytes_ok = byte_goal is None or self.bytes <= byte_goal
                if keys_ok and bytes_ok:
                    return
                if remove(ns, key) is None:
                    # Not in its table (should not happen): forget it.
                    size = self._sizes.pop((ns, key), 0)
                    self.keys -= 1
                    self.bytes -= size
                    self._order.pop((ns, key), None)
                    self._hits.pop((ns, key), None)
        finally:
            self._evicting = False

    def stats(self) -> dict[str, Any]:
        """``evictions`` and the limits, for ``stats()``."""
        return {"evictions": self.evictions, **self.limits.stats()}


class TableWatch:
    """What a :class:`~._table.RecordTable` of namespace ``ns`` reports to a Tracker."""

    __slots__ = ("ns", "tracker")

    def __init__(self, tracker: Tracker, ns: str) -> None:
        self.tracker = tracker
        self.ns = ns

    def stored(self, key: str, old: Record | None, record: Record) -> None:
        """Called before ``record`` replaces ``old``; may raise to refuse it."""
        self.tracker.stored(self.ns, key, old, record)

    def removed(self, key: str, old: Record) -> None:
        """Called after the record ``old`` of ``key`` was removed."""
        self.tracker.removed(self.ns, key, old)
