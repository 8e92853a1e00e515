"""The bounded memory store: ``memory://?max_keys=...`` (rules in :mod:`._bounds`).

A subclass of the memory backend, so an unbounded store pays nothing for
bounds. Every write operation runs under the store's lock inside
:meth:`~._bounds.Tracker.write`, which evicts (or refuses, under
``"none"``) before the lock is released: no thread ever sees the store above
its limits. Reads take no lock, as in the unbounded store; an LRU or LFU
read records its use with one dict operation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from ..records import Record, Value
from ._bounds import WRITE_METHODS, Limits, TableWatch, Tracker
from ._table import RecordTable
from .memory import MemoryBackend


class BoundedMemoryBackend(MemoryBackend):
    """A memory store with ``max_keys`` / ``max_bytes`` and an eviction policy."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits
        self._tracker = Tracker(limits)
        self._records_reads = limits.policy in ("lru", "lfu")
        self._lru = self._tracker.lru_touch() if limits.policy == "lru" else None

    def _table(self, ns: str) -> RecordTable:
        table = super()._table(ns)
        if table.watch is None:
            table.watch = TableWatch(self._tracker, ns)
        return table

    def get(self, ns: str, key: str, now: int) -> Value | None:
        value = super().get(ns, key, now)
        if value is not None and self._records_reads:
            if self._lru is not None:  # the LRU read inlined: the hot path
                try:  # noqa: SIM105 (suppress() costs a context manager per read)
                    self._lru((ns, key))
                except KeyError:
                    pass  # evicted or removed since the read found it
            else:
                self._tracker.read(ns, key)
        return value

    def note_reads(self, ns: str, keys: Sequence[str], now: int) -> None:
        """Reads the cache tier served: ranked as :meth:`get` ranks its reads."""
        if self._records_reads:
            read = self._tracker.read
            for key in keys:
                read(ns, key)

    def _put_record(self, ns: str, key: str, record: Record) -> None:
        self._table(ns).put(key, record)

    def _remove_record(self, ns: str, key: str) -> Record | None:
        table = self._data.get(ns)
        return None if table is None else table.remove(key)

    def stats(self, ns: str, now: int) -> dict[str, Any]:
        with self._lock:
            return {**super().stats(ns, now), **self._tracker.stats()}


def _bounded(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(self: BoundedMemoryBackend, *args: Any, **kwargs: Any) -> Any:
        # Tracker.write() spelled out: a generator-based context manager
        # doubled the cost of a memory write.
        # The lock is taken without `with` for the reason MemoryBackend.put gives.
        tracker = self._tracker
        lock = self._lock
        lock.acquire()
        try:
            outermost = tracker.begin()
            try:
                result = method(self, *args, **kwargs)
                if outermost:
                    tracker.settle(self._remove_record)
            except BaseException:
                if outermost:
                    tracker.abort(self._put_record, self._remove_record)
                raise
            finally:
                tracker.end()
            return result
        finally:
            lock.release()

    return write


for _name in WRITE_METHODS:
    _method = getattr(MemoryBackend, _name, None)
    if _method is not None:
        setattr(BoundedMemoryBackend, _name, _bounded(_name, _method))
