"""Bounded JSON file stores: ``file://./cache.json?max_keys=...`` (rules in :mod:`._bounds`).

The limits live in the document, in a ``"bounds"`` member, and the document
then declares ``"format_version": 2``, so a keyshelf that does not know
bounds refuses the file instead of writing past its limits::

    "bounds": {"max_keys": 1000, "max_bytes": null, "eviction": "lru", "evictions": 42}

Every write already holds the file lock over load, change and save; the
accounting (:class:`~._bounds.Tracker`) runs inside that, so eviction (or the
refusal under ``"none"``) happens before the document is saved, whichever
process writes. After every load the tracker is rebuilt from the records:
the LRU order from ``updated_at``, FIFO from ``created_at``, LFU counts from
``version`` (writes). Reads are added in this process only (a read never
writes the file), and are forgotten when another process's write makes this
one reload: that is how cross-process recency is approximated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import InvalidURLError
from ..records import Record, Value
from ._bounds import POLICIES, Limits, TableWatch, Tracker
from ._table import RecordTable
from .file import BOUNDED_FORMAT_VERSION, FileBackend

# A tracker that never evicts: before the file's limits are known.
_UNKNOWN = Limits(None, None, "lru")


def parse_bounds(obj: Any) -> tuple[Limits, int] | None:
    """The limits and eviction count of a ``"bounds"`` member; None if it is not valid."""
    if type(obj) is not dict:
        return None
    max_keys, max_bytes = obj.get("max_keys"), obj.get("max_bytes")
    policy, evictions = obj.get("eviction"), obj.get("evictions", 0)
    for limit in (max_keys, max_bytes):
        if limit is not None and (type(limit) is not int or limit < 1):
            return None
    if policy not in POLICIES or type(evictions) is not int or evictions < 0:
        return None
    if max_keys is None and max_bytes is None:
        return None
    return Limits(max_keys, max_bytes, policy), evictions


class BoundedFileBackend(FileBackend):
    """A JSON file store with ``max_keys`` / ``max_bytes`` and an eviction policy.

    ``limits`` None: open a file that is already bounded, with its limits.
    Limits given to a bounded file replace the stored ones at open (every
    process follows them from its next load); records beyond them are evicted
    by the next write.
    """

    def __init__(self, path: Any, *, limits: Limits | None, **settings: Any) -> None:
        self._tracker = Tracker(limits or _UNKNOWN)
        self._file_limits: Limits | None = None
        self._file_evictions = 0
        super().__init__(path, **settings)
        try:
            if limits is not None and limits != self._file_limits:
                if self._readonly:
                    raise InvalidURLError("Limits cannot be set on a store opened readonly=True")
                self._file_limits = limits
                self._rebuild()
                # Saved without the eviction scope: a store already above the
                # new limits shrinks at its next write (nothing is refused now).
                with super()._writing():
                    self._dirty = True
            elif self._file_limits is None:
                raise InvalidURLError(f"{self.path} has no limits to open it with")
        except BaseException:
            self.close()
            raise

    # -- the document -----------------------------------------------------------

    def _parse_extras(self, doc: dict[str, Any]) -> None:
        super()._parse_extras(doc)
        if self._stored_bounds is None:
            self._file_limits, self._file_evictions = None, 0
            return
        parsed = parse_bounds(self._stored_bounds)
        version = doc.get("format_version")
        if parsed is None or type(version) is not int or version < BOUNDED_FORMAT_VERSION:
            raise self._incompatible(
                f'is corrupt: "bounds" must be {{"max_keys", "max_bytes", "eviction", '
                f'"evictions"}} in a document of format_version {BOUNDED_FORMAT_VERSION} or '
                f"later, got {self._stored_bounds!r}"
            )
        self._file_limits, self._file_evictions = parsed

    def _extra_members(self) -> dict[str, Any]:
        limits = self._tracker.limits
        # At least version 2 (a later format, e.g. one with a change feed, keeps its own).
        return {
            "format_version": BOUNDED_FORMAT_VERSION,
            "bounds": {
                "max_keys": limits.max_keys,
                "max_bytes": limits.max_bytes,
                "eviction": limits.policy,
                "evictions": self._tracker.evictions,
            },
        }

    def _load(self) -> None:
        super()._load()
        self._rebuild()

    def _reset(self) -> None:
        super()._reset()
        self._rebuild()

    def _rebuild(self) -> None:
        """A tracker for the records just loaded, in their eviction order."""
        limits = self._file_limits or self._tracker.limits
        tracker = Tracker(limits)
        tracker.evictions = max(self._file_evictions, 0)
        rows: list[tuple[Any, str, str, Record]] = []
        for ns, table in self._data.items():
            table.watch = TableWatch(tracker, ns)
            rows.extend((_rank(r, limits.policy), ns, key, r) for key, r in table.records.items())
        rows.sort(key=lambda row: (row[0], row[1], row[2]))
        for _rank_value, ns, key, record in rows:
            tracker.load(ns, key, record)
        self._tracker = tracker

    def _put(self, ns: str, key: str, record: Record) -> None:
        if ns not in self._data:
            table = self._data[ns] = RecordTable()
            table.watch = TableWatch(self._tracker, ns)
        super()._put(ns, key, record)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with super()._writing(), self._tracker.write(self._put, self._remove):
            yield

    # -- reads and stats -------------------------------------------------------------

    def get(self, ns: str, key: str, now: int) -> Value | None:
        value = super().get(ns, key, now)
        if value is not None:
            self._tracker.read(ns, key)
        return value

    def note_reads(self, ns: str, keys: Sequence[str], now: int) -> None:
        """Reads the cache tier served: ranked as :meth:`get` ranks its reads."""
        for key in keys:
            self._tracker.read(ns, key)

    def stats(self, ns: str, now: int) -> dict[str, Any]:
        out = super().stats(ns, now)
        with self._lock:
            return {**out, **self._tracker.stats()}


def _rank(record: Record, policy: str) -> Any:
    """Where a loaded record goes in the eviction order (smallest first)."""
    if policy == "fifo":
        return record.created_at
    if policy == "lfu":
        return record.version
    return record.updated_at
