"""The in-process record table shared by the memory and file backends.

A :class:`RecordTable` holds the records of one namespace: a dict from key to
:class:`~keyshelf.records.Record` for lookups, and a :class:`SortedKeys`
index of the same keys in code-point order for listings. It applies the
rules every backend shares: a record whose ``expires_at <= now`` is absent
(it stays in the table, and in ``stats()``'s ``total_keys``, until purged or
overwritten); a listing seeks to the larger of its pattern's literal prefix
and the last key of the previous page, then walks forward and stops at the
end of the prefix range.

Costs, for a namespace of ``n`` keys (``B`` = :data:`CHUNK`, 512):

* lookup, and replacing the record of a key already present: O(1);
* adding or removing a key: O(log n) comparisons and O(B + n / B) pointer
  moves (one chunk, and rarely the list of chunks), once the index exists;
* a page of a listing that walks ``k`` keys: O(log n + k), whatever page of
  the stream it is; a literal pattern is one lookup;
* counting or sizing a whole namespace, stats: O(n) without sorting.

The index is built by the first listing that needs it (one sort), so a
namespace that is only read and written by key never pays for it; from then
on writes keep it current and no listing sorts again.

Tables are not thread-safe: the backend serialises every call (the memory
backend under its lock, the file backend under its own). The memory backend
alone reads ``records`` without its lock, for single-key lookups, which a
dict answers atomically.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..codec import payload_size
from ..patterns import Matcher, compile_pattern
from ..records import DELETE, MultiDecision, R, Record, Value, Write, new_record, stats_dict

#: Target chunk length of :class:`SortedKeys`: a chunk splits beyond twice
#: this and merges with a neighbour below half of it. Moving 512 to 1024
#: pointers per insert is cheap next to the comparisons that find the place.
CHUNK = 512


class SortedKeys:
    """A set of strings in code-point order, as a list of sorted chunks.

    The concatenation of the chunks is sorted and holds each key once; every
    chunk is non-empty and ``_lasts[i]`` is the last key of chunk ``i``. An
    insert or delete touches one chunk (bisect plus a move of at most
    ``2 * CHUNK`` pointers), so it never costs a move of the whole index as a
    single sorted list would (quadratic when loading random keys).
    """

    __slots__ = ("_chunks", "_lasts", "_size")

    def __init__(self, keys: list[str] | None = None) -> None:
        """Index ``keys``, which must hold no duplicates (sorted here: one sort)."""
        ordered = sorted(keys) if keys else []
        self._chunks = [ordered[i : i + CHUNK] for i in range(0, len(ordered), CHUNK)]
        self._lasts = [chunk[-1] for chunk in self._chunks]
        self._size = len(ordered)

    def __len__(self) -> int:
        return self._size

    def add(self, key: str) -> None:
        """Insert ``key``, which must not be present."""
        lasts = self._lasts
        self._size += 1
        if not lasts:
            self._chunks.append([key])
            lasts.append(key)
            return
        i = bisect_left(lasts, key)
        if i == len(lasts):  # beyond every key: the end of the last chunk
            i -= 1
            self._chunks[i].append(key)
            lasts[i] = key
        else:
            insort(self._chunks[i], key)
        chunk = self._chunks[i]
        if len(chunk) > 2 * CHUNK:
            half = len(chunk) // 2
            self._chunks[i : i + 1] = [chunk[:half], chunk[half:]]
            lasts[i : i + 1] = [chunk[half - 1], chunk[-1]]

    def discard(self, key: str) -> None:
        """Remove ``key`` if present."""
        lasts = self._lasts
        i = bisect_left(lasts, key)
        if i == len(lasts):
            return
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        if chunk[j] != key:
            return
        del chunk[j]
        self._size -= 1
        if not chunk:
            del self._chunks[i], lasts[i]
            return
        lasts[i] = chunk[-1]
        if len(chunk) < CHUNK // 2 and len(self._chunks) > 1:
            # Merge with a neighbour (and split again if that is too long),
            # so that the number of chunks stays about n / CHUNK.
            i = i if i + 1 < len(self._chunks) else i - 1
            merged = self._chunks[i] + self._chunks[i + 1]
            if len(merged) > 2 * CHUNK:
                half = len(merged) // 2
                self._chunks[i : i + 2] = [merged[:half], merged[half:]]
                lasts[i : i + 2] = [merged[half - 1], merged[-1]]
            else:
                self._chunks[i : i + 2] = [merged]
                lasts[i : i + 2] = [merged[-1]]

    def iter_from(self, prefix: str, after: str | None) -> Iterator[str]:
        """Keys in order from the first one ``>= prefix`` and ``> after``.

        One binary search over the chunks and one within a chunk, whichever
        bound is larger. The index must not change while the iterator runs.
        """
        lasts = self._lasts
        if after is not None and after >= prefix:
            i = bisect_right(lasts, after)
            if i == len(lasts):
                return
            first = self._chunks[i]
            j = bisect_right(first, after)
        else:
            i = bisect_left(lasts, prefix)
            if i == len(lasts):
                return
            first = self._chunks[i]
            j = bisect_left(first, prefix)
        for index in range(j, len(first)):
            yield first[index]
        chunks = self._chunks
        for c in range(i + 1, len(chunks)):
            yield from chunks[c]

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks:
            yield from chunk


def _is_live(record: Record | None, now: int) -> bool:
    return record is not None and (record.expires_at is None or record.expires_at > now)


class RecordTable:
    """The records of one namespace, with a sorted index for listings.

    ``records`` may be read directly; every change goes through :meth:`put`,
    :meth:`remove` and the other methods, which keep the index current.
    """

    __slots__ = ("_index", "feed", "records", "watch")

    def __init__(self, records: dict[str, Record] | None = None) -> None:
        """A table of ``records`` (taken, not copied); the index is built on demand."""
        self.records: dict[str, Record] = {} if records is None else records
        self._index: SortedKeys | None = None
        # A bounded store's accounting (_bounds.TableWatch): told of every
        # change, before a put (it may refuse it) and after a removal.
        self.watch: Any = None
        # The change feed (_changelog.TableFeed), when it is on: called with
        # (key, old record or None, new record or None) after every change.
        self.feed: Any = None

    def __len__(self) -> int:
        """Every record, expired ones included."""
        return len(self.records)

    def _sorted(self) -> SortedKeys:
        index = self._index
        if index is None:
            index = self._index = SortedKeys(list(self.records))
        return index

    # -- single keys ----------------------------------------------------------

    def live(self, key: str, now: int) -> Record | None:
        """The record of ``key`` unless it is missing or expired."""
        record = self.records.get(key)
        if record is None:
            return None
        expires = record.expires_at
        if expires is not None and expires <= now:
            return None
        return record

    def put(self, key: str, record: Record) -> None:
        """Store ``record`` under ``key``, replacing any record (live or expired)."""
        records = self.records
        if self.watch is not None:
            self.watch.stored(key, records.get(key), record)
        if self.feed is not None:
            self.feed(key, records.get(key), record)
        if self._index is not None and key not in records:
            self._index.add(key)
        records[key] = record

    def remove(self, key: str) -> Record | None:
        """Remove ``key``; return its record (live or expired), or None."""
        record = self.records.pop(key, None)
        if record is not None:
            if self._index is not None:
                self._index.discard(key)
            if self.watch is not None:
                self.watch.removed(key, record)
            if self.feed is not None:
                self.feed(key, record, None)
        return record

    def clear(self) -> None:
        """Remove every record."""
        if self.watch is not None or self.feed is not None:
            for key in list(self.records):
                self.remove(key)
        self.records.clear()
        self._index = None

    # -- listings -------------------------------------------------------------

    def _keys(self, matcher: Matcher, after: str | None) -> Iterator[str]:
        """Keys of every record (expired too) matching ``matcher``, in order, after ``after``."""
        prefix = matcher.prefix
        if matcher.literal:
            if prefix in self.records and (after is None or prefix > after):
                yield prefix
            return
        # A range of the prefix needs no further test for these patterns.
        test = None if matcher.match_all or matcher.prefix_only else matcher.match
        for key in self._sorted().iter_from(prefix, after):
            if prefix and not key.startswith(prefix):
                return
            if test is None or test(key):
                yield key

    def walk(self, matcher: Matcher, now: int, after: str | None) -> Iterator[tuple[str, Record]]:
        """Live ``(key, record)`` pairs matching ``matcher`` in order, strictly after ``after``.

        Walks from the larger of the prefix and ``after`` to the end of the
        prefix range, testing the live filter before the pattern. The table
        must not change while the iterator runs.
        """
        prefix = matcher.prefix
        records = self.records
        if matcher.literal:
            record = self.live(prefix, now)
            if record is not None and (after is None or prefix > after):
                yield prefix, record
            return
        test = None if matcher.match_all or matcher.prefix_only else matcher.match
        for key in self._sorted().iter_from(prefix, after):
            if prefix and not key.startswith(prefix):
                return
            record = records[key]
            expires = record.expires_at
            if (expires is None or expires > now) and (test is None or test(key)):
                yield key, record

    def scan(
        self,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        """Up to ``limit`` (None: all) live keys matching after ``after``, with values if asked."""
        rows: list[tuple[str, Value | None]] = []
        if limit is not None and limit <= 0:
            return rows
        for key, record in self.walk(matcher, now, after):
            rows.append((key, (record.tag, record.payload) if values else None))
            if limit is not None and len(rows) >= limit:
                break
        return rows

    def scan_records(self, now: int, after: str | None, limit: int) -> list[tuple[str, Record]]:
        """Up to ``limit`` live records in key order, after ``after`` (export, migration)."""
        rows: list[tuple[str, Record]] = []
        if limit <= 0:
            return rows
        for row in self.walk(_ALL, now, after):
            rows.append(row)
            if len(rows) >= limit:
                break
        return rows

    # -- whole namespace --------------------------------------------------------

    def count(self, matcher: Matcher, now: int) -> int:
        """Live keys matching ``matcher`` (every live key: one pass, no index)."""
        if matcher.match_all:
            return sum(1 for r in self.records.values() if _is_live(r, now))
        return sum(1 for _ in self.walk(matcher, now, None))

    def has_live(self, now: int) -> bool:
        """True if at least one record is live."""
        return any(_is_live(r, now) for r in self.records.values())

    def stats(self, now: int) -> dict[str, Any]:
        """The ``stats()`` mapping of the namespace.

        ``total_keys`` counts expired records not purged yet, ``active_keys``
        the live ones, ``expired_keys`` the difference and ``keys_with_ttl``
        the live ones with an expiry.
        """
        active = with_ttl = 0
        for record in self.records.values():
            expires = record.expires_at
            if expires is None:
                active += 1
            elif expires > now:
                active += 1
                with_ttl += 1
        return stats_dict(len(self.records), active, with_ttl)

    def total_size(self, now: int) -> int:
        """Sum of :func:`~keyshelf.codec.payload_size` over the live records."""
        return sum(
            payload_size(r.tag, r.payload) for r in self.records.values() if _is_live(r, now)
        )

    def matching(self, matcher: Matcher) -> list[str]:
        """Keys of every record matching ``matcher``, expired ones too.

        Uses the index's prefix range once it exists; before that, one pass
        over the keys (building the index would cost a sort).
        """
        if matcher.match_all:
            return list(self.records)
        if matcher.literal or self._index is not None:
            return list(self._keys(matcher, None))
        return [key for key in self.records if matcher.match(key)]

    def remove_matching(self, matcher: Matcher, now: int) -> tuple[list[str], int]:
        """Remove every record matching ``matcher``; the keys removed and how many were live."""
        if matcher.match_all:
            doomed = list(self.records)
            live = sum(1 for r in self.records.values() if _is_live(r, now))
            self.clear()
            return doomed, live
        doomed = self.matching(matcher)
        live = 0
        for key in doomed:
            live += _is_live(self.remove(key), now)
        return doomed, live

    def expired(self, now: int) -> list[str]:
        """Keys of the expired records, in no particular order."""
        return [key for key, r in self.records.items() if not _is_live(r, now)]

    def purge(self, now: int) -> list[str]:
        """Remove the expired records; return their keys."""
        doomed = self.expired(now)
        for key in doomed:
            self.remove(key)
        return doomed


def decide_many(
    live: Callable[[str], Record | None], keys: Sequence[str], now: int, decide: MultiDecision[R]
) -> tuple[list[tuple[str, Record | None]], R]:
    """Run a multi-key decision (``update_many``) over live records: the changes and the result.

    ``live(key)`` gives the live record of a key. Each change is ``(key,
    record to store)`` or ``(key, None)`` to remove it, with the rules of
    ``update`` (``created_at`` kept and ``version`` + 1 for a live key). The
    caller applies the changes under the same lock as the reads: the memory
    backend under its lock, the file backend under its file lock, saved once.
    Nothing is returned (so nothing is applied) if ``decide`` raises.
    """
    records = {key: live(key) for key in keys}
    actions, result = decide(records)
    changes: list[tuple[str, Record | None]] = []
    for key, action in actions.items():
        if isinstance(action, Write):
            changes.append((key, new_record(action, records[key], now)))
        elif action is DELETE:
            changes.append((key, None))
    return changes, result


def live_namespaces(tables: Mapping[str, RecordTable], now: int) -> list[str]:
    """Sorted names of the tables holding at least one live record."""
    return sorted(ns for ns, table in tables.items() if table.has_live(now))


# Every key (the default dialect's "*"), for scan_records.
_ALL = compile_pattern("*")
