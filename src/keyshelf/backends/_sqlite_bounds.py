"""Bounded SQLite stores: limits kept by triggers, in the database file itself.

Rules in :mod:`._bounds`. The layout, beside keyshelf's data table ``t``:

* ``t_bounds``: one row with the limits (``max_keys``, ``max_bytes``,
  ``policy``), the running totals (``keys``, ``bytes``) and the eviction
  count;
* ``t_reads``: the reads of LRU and LFU stores that processes flushed
  (``(ns, key, at, hits)``: the last read's instant and how many reads);
* ``t_evicted``: the batch being evicted, empty between writes;
* five triggers on ``t``: ``AFTER INSERT``, ``AFTER UPDATE`` and ``AFTER
  DELETE`` ones that keep the totals current, and ``AFTER INSERT`` /
  ``AFTER UPDATE`` ones that run only after a write that took the store
  above a limit and evict (``DELETE`` of the first rows in eviction order,
  never the row just written) or, under ``"none"``, ``RAISE(ABORT)``: SQLite
  then undoes the whole statement, and a transaction's caller rolls back.

The eviction order comes from the data table's own columns (``updated_at``
for LRU, ``created_at`` for FIFO, ``version`` for LFU) joined with
``t_reads``, so a write touches one more page than on an unbounded store
(the totals row); finding victims scans the table, which the headroom makes
rare: one scan per batch of ``min(4096, max_keys // 16)`` keys.

Because the triggers live in the file, every write path of every process
(single statements, ``update``/``update_many`` transactions, imports) is
bound by them; keyshelf versions that know nothing of bounds refuse a table
with triggers at open. Every keyshelf connection turns on
``recursive_triggers``, so a row that ``INSERT OR REPLACE`` replaces is
counted out by the delete trigger. Reads do not write: an LRU or LFU store
remembers which keys this process read and adds them to ``t_reads`` in one
transaction at the next write of this process, when 1,024 distinct keys are
pending, at a read a second after the last flush (the clock is looked at every
128 reads), or when the store closes, whichever comes first.
Another process's eviction sees only the reads flushed so far: that is how
cross-process recency is approximated.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ..errors import (
    IncompatibleStoreError,
    InvalidURLError,
    KVError,
    StoreFullError,
    ValueTooLargeError,
)
from ..records import DELETE, MultiDecision, R, Value
from ._bounds import MAX_KEY_HEADROOM, WRITE_METHODS, Limits
from ._fastpath import WouldBlock
from .sqlite import _SIZE, SQLiteBackend, _tokens

#: The messages the triggers abort with (mapped to keyshelf's errors).
FULL = "keyshelf: store full"
TOO_LARGE = "keyshelf: value larger than max_bytes"

#: Pending reads that make a flush (distinct keys).
FLUSH_KEYS = 1024
#: Seconds after which pending reads are flushed by a read (checked every
#: CLOCK_EVERY reads).
FLUSH_SECONDS = 1.0
CLOCK_EVERY = 128


def _size(row: str) -> str:
    return _SIZE.replace("type", f"{row}.type").replace("value", f"{row}.value")


def bounds_table_sql(t: str) -> str:
    return (
        f"CREATE TABLE {t}_bounds (id INTEGER PRIMARY KEY CHECK (id = 0), "
        "max_keys INTEGER, max_bytes INTEGER, policy TEXT NOT NULL, "
        "keys INTEGER NOT NULL, bytes INTEGER NOT NULL, "
        "evictions INTEGER NOT NULL, evicting INTEGER NOT NULL)"
    )


def reads_table_sql(t: str) -> str:
    return (
        f"CREATE TABLE {t}_reads (ns TEXT NOT NULL, key TEXT NOT NULL, "
        "at INTEGER NOT NULL, hits INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )


def evicted_table_sql(t: str) -> str:
    return (
        f"CREATE TABLE {t}_evicted (ns TEXT NOT NULL, key TEXT NOT NULL, "
        "size INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )


def _victims(t: str, mine: str, limit: str) -> str:
    """Rows of ``t`` in eviction order (not ``mine``), at most ``limit``.

    LRU: the later of the last write (``updated_at``) and the last flushed
    read, a read winning a tie; LFU: writes (``version``) plus flushed reads,
    then LRU order; FIFO: ``created_at``. Ties end in key order. A scan of
    the table: the headroom makes it rare (one per batch of evictions).
    """
    b, r = f"{t}_bounds", f"{t}_reads"
    policy = f"(SELECT policy FROM {b})"
    recency = "max(d.updated_at, coalesce(r.at, 0))"
    read_last = "(r.at IS NOT NULL AND r.at >= d.updated_at)"
    return f"""SELECT d.ns, d.key, {_size("d")} AS size FROM {t} AS d
            LEFT JOIN {r} AS r ON r.ns = d.ns AND r.key = d.key
            WHERE NOT (d.{mine.replace(" AND key", " AND d.key")})
            ORDER BY CASE {policy} WHEN 'lfu' THEN d.version + coalesce(r.hits, 0)
                                   WHEN 'fifo' THEN d.created_at ELSE {recency} END,
                     CASE {policy} WHEN 'lfu' THEN {recency} WHEN 'fifo' THEN 0
                                   ELSE {read_last} END,
                     d.ns, d.key
            LIMIT {limit}"""


_OVER_KEYS = "(max_keys IS NOT NULL AND keys > max_keys)"
_OVER_BYTES = "(max_bytes IS NOT NULL AND bytes > max_bytes)"


def _write_trigger_sql(t: str, event: str) -> str:
    """The AFTER INSERT / AFTER UPDATE trigger that keeps the totals, or refuses."""
    b = f"{t}_bounds"
    size = _size("new")
    if event == "UPDATE":  # the key was there: only its size may change
        totals = f"bytes = bytes + {size} - {_size('old')} WHERE {size} <> {_size('old')}"
    else:
        totals = f"keys = keys + 1, bytes = bytes + {size}"
    too_large = f"(max_bytes IS NOT NULL AND {size} > max_bytes)"
    return f"""CREATE TRIGGER {t}_bounds_{event.lower()} AFTER {event} ON {t}
BEGIN
    UPDATE {b} SET {totals};
    SELECT CASE WHEN {too_large} THEN RAISE(ABORT, '{TOO_LARGE}')
                ELSE RAISE(ABORT, '{FULL}') END FROM {b}
        WHERE {too_large} OR (policy = 'none' AND ({_OVER_KEYS} OR {_OVER_BYTES}));
END"""


def _evict_trigger_sql(t: str, event: str) -> str:
    """The AFTER INSERT / AFTER UPDATE trigger that evicts, only when a limit is exceeded.

    SQLite runs the triggers of one event newest first, so this one, created
    before the totals trigger of its event, runs after it and sees the write
    counted. (The conformance tests check the limits after every write: a
    SQLite running them in another order would fail them.)
    """
    b = f"{t}_bounds"
    mine = "ns = new.ns AND key = new.key"
    # The goals: max_keys - key_headroom(max_keys), max_bytes - byte_headroom(max_bytes).
    headroom = f"min({MAX_KEY_HEADROOM}, max_keys / 16)"
    byte_goal = "(max_bytes - max_bytes / 16)"
    key_count = (
        f"(SELECT CASE WHEN {_OVER_KEYS} THEN keys - max_keys + {headroom} ELSE 0 END FROM {b})"
    )
    byte_scan = (
        f"(SELECT CASE WHEN max_bytes IS NOT NULL AND bytes > {byte_goal} "
        f"THEN -1 ELSE 0 END FROM {b})"
    )
    e, r = f"{t}_evicted", f"{t}_reads"
    # The victims are gathered in t_evicted (empty between writes), counted
    # out of the totals in one statement, then deleted with the delete
    # trigger switched off by the evicting flag: per-row accounting made an
    # eviction batch cost several times the scan that finds it.
    return f"""CREATE TRIGGER {t}_bounds_evict_{event.lower()} AFTER {event} ON {t}
WHEN (SELECT policy <> 'none' AND ({_OVER_KEYS} OR {_OVER_BYTES}) FROM {b})
BEGIN
    INSERT INTO {e} (ns, key, size)
        SELECT ns, key, size FROM ({_victims(t, mine, key_count)});
    INSERT INTO {e} (ns, key, size)
        SELECT ns, key, size FROM (
            SELECT ns, key, size, sum(size) OVER (ROWS UNBOUNDED PRECEDING) AS freed
            FROM ({_victims(t, mine, byte_scan)})) AS v
        WHERE freed - size < (SELECT bytes - {byte_goal} FROM {b})
            AND NOT EXISTS (SELECT 1 FROM {e} WHERE {e}.ns = v.ns AND {e}.key = v.key);
    UPDATE {b} SET evicting = 1,
        keys = keys - (SELECT count(*) FROM {e}),
        bytes = bytes - (SELECT coalesce(sum(size), 0) FROM {e}),
        evictions = evictions + (SELECT count(*) FROM {e});
    DELETE FROM {t} WHERE (ns, key) IN (SELECT ns, key FROM {e});
    DELETE FROM {r} WHERE (ns, key) IN (SELECT ns, key FROM {e});
    DELETE FROM {e};
    UPDATE {b} SET evicting = 0;
END"""


def _delete_trigger_sql(t: str) -> str:
    b, r = f"{t}_bounds", f"{t}_reads"
    return f"""CREATE TRIGGER {t}_bounds_delete AFTER DELETE ON {t}
WHEN NOT (SELECT evicting FROM {b})
BEGIN
    UPDATE {b} SET keys = keys - 1, bytes = bytes - {_size("old")};
    DELETE FROM {r} WHERE ns = old.ns AND key = old.key;
END"""


def trigger_sql(t: str) -> dict[str, str]:
    """Name -> definition of every trigger a bounded store puts on table ``t``."""
    # In creation order: each evict trigger before the totals trigger of its event.
    return {
        f"{t}_bounds_evict_insert": _evict_trigger_sql(t, "INSERT"),
        f"{t}_bounds_evict_update": _evict_trigger_sql(t, "UPDATE"),
        f"{t}_bounds_insert": _write_trigger_sql(t, "INSERT"),
        f"{t}_bounds_update": _write_trigger_sql(t, "UPDATE"),
        f"{t}_bounds_delete": _delete_trigger_sql(t),
    }


def is_ours(t: str, name: str, sql: str | None) -> bool:
    """True if trigger ``name`` on ``t`` is exactly one a bounded store creates."""
    want = trigger_sql(t).get(name)
    return want is not None and sql is not None and _tokens(sql) == _tokens(want)


def has_bounds(conn: sqlite3.Connection, t: str) -> bool:
    """True if the file holds a bounded store's tables for ``t``."""
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (f"{t}_bounds",)
    ).fetchone()
    return bool(row[0])


def store_error(exc: sqlite3.Error) -> KVError | None:
    """The keyshelf error of a trigger's abort, or None for any other error."""
    message = str(exc)
    if FULL in message:
        return StoreFullError(
            "The store is full (eviction='none'): the write would exceed max_keys or "
            "max_bytes; nothing was changed"
        )
    if TOO_LARGE in message:
        return ValueTooLargeError(
            "The value is larger than the store's max_bytes: it can never fit; nothing was changed"
        )
    return None


class BoundedSQLiteBackend(SQLiteBackend):
    """An SQLite store whose file carries limits (see the module docstring).

    ``limits`` None: open a store that is already bounded with its own
    limits. Limits given to a bounded store replace the stored ones (every
    process then follows the new ones from its next write).
    """

    def __init__(self, path: Any, *, limits: Limits | None, **options: Any) -> None:
        super().__init__(path, **options)
        self._pending: dict[tuple[str, str], list[int]] = {}
        self._flushed_at = time.monotonic()
        self._reads = 0
        try:
            self._limits = self._run("open", lambda conn: self._install(conn, limits))
        except BaseException:
            self.close()
            raise
        self._records_reads = self._limits.policy in ("lru", "lfu") and not self._readonly

    # -- schema ---------------------------------------------------------------

    def _install(self, conn: sqlite3.Connection, limits: Limits | None) -> Limits:
        t = self._table
        if self._readonly:
            if limits is not None:
                raise InvalidURLError("Limits cannot be set on a store opened readonly=True")
            return self._read_limits(conn)
        with self._transaction(conn):
            fresh = not has_bounds(conn, t)
            if fresh:
                if limits is None:
                    raise IncompatibleStoreError(f"{self.path}: table {t} is not bounded")
                conn.execute(bounds_table_sql(t))
                conn.execute(reads_table_sql(t))
                conn.execute(evicted_table_sql(t))
                conn.execute(
                    f"INSERT INTO {t}_bounds SELECT 0, NULL, NULL, 'lru', count(*), "
                    f"coalesce(sum({_SIZE}), 0), 0, 0 FROM {t}"
                )
                for sql in trigger_sql(t).values():
                    conn.execute(sql)
            self._check_shape(conn)
            current = self._read_limits(conn)
            if limits is not None and limits != current:
                conn.execute(
                    f"UPDATE {t}_bounds SET max_keys = ?, max_bytes = ?, policy = ?",
                    (limits.max_keys, limits.max_bytes, limits.policy),
                )
                current = limits
        return current

    def _check_shape(self, conn: sqlite3.Connection) -> None:
        t = self._table
        want = {
            f"{t}_bounds": bounds_table_sql(t),
            f"{t}_reads": reads_table_sql(t),
            f"{t}_evicted": evicted_table_sql(t),
            **trigger_sql(t),
        }
        found = dict(
            conn.execute(
                f"SELECT name, sql FROM sqlite_master WHERE name IN ({', '.join('?' * len(want))})",
                tuple(want),
            ).fetchall()
        )
        for name, sql in want.items():
            if name not in found or found[name] is None or _tokens(found[name]) != _tokens(sql):
                raise IncompatibleStoreError(
                    f"{self.path}: {name} is missing or not keyshelf's; the bounded store "
                    f"is damaged (open it with table='...' to use other tables)"
                )

    def _read_limits(self, conn: sqlite3.Connection) -> Limits:
        row = conn.execute(
            f"SELECT max_keys, max_bytes, policy FROM {self._table}_bounds"
        ).fetchone()
        return Limits(row[0], row[1], row[2])

    # -- errors ---------------------------------------------------------------

    def _error(self, exc: sqlite3.Error, action: str) -> Any:
        mapped = store_error(exc)
        return mapped if mapped is not None else super()._error(exc, action)

    # -- reads and their ranking -------------------------------------------------

    def get(self, ns: str, key: str, now: int) -> Value | None:
        value = super().get(ns, key, now)
        if value is not None and self._records_reads:
            self._note_read(ns, key, now)
        return value

    def note_reads(self, ns: str, keys: Sequence[str], now: int) -> None:
        """Reads the cache tier served: pending like :meth:`get`'s, flushed alike."""
        if self._records_reads:
            for key in keys:
                self._note_read(ns, key, now)

    def _note_read(self, ns: str, key: str, now: int) -> None:
        pending = self._pending
        slot = (ns, key)
        seen = pending.get(slot)
        if seen is None:
            pending[slot] = [now, 1]
            if len(pending) >= FLUSH_KEYS:
                self._flush_after_read()
        else:
            seen[0] = max(seen[0], now)
            seen[1] += 1
        # The clock is read once every CLOCK_EVERY reads (it costs as much
        # as the rest of this bookkeeping).
        self._reads += 1
        if not self._reads % CLOCK_EVERY and time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self._flush_after_read()

    def _flush_after_read(self) -> None:
        """Flush the pending reads, unless the database is busy: then later.

        A read must not fail, or wait, because its bookkeeping could not be
        written: when another connection holds the write lock (beyond the
        timeout, or at once on the async fast path's no-wait connection),
        the reads stay pending for the next flush.
        """
        local = self._local
        if getattr(local, "nowait", False):  # the async fast path's connection
            with contextlib.suppress(WouldBlock, KVError):
                self.flush_reads()
            return
        # A waiting connection tries once without waiting, then waits again.
        conn = self._connection()
        conn.execute("PRAGMA busy_timeout=0")
        local.nowait = True
        try:
            with contextlib.suppress(WouldBlock, KVError):
                self.flush_reads()
        finally:
            local.nowait = False
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")

    def flush_reads(self) -> None:
        """Add the reads pending in this process to ``t_reads`` (one transaction).

        Only keys still present are recorded: a read of a key deleted since
        leaves nothing behind.
        """
        self._flushed_at = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        t = self._table
        rows = [(ns, key, at, hits) for (ns, key), (at, hits) in pending.items()]
        sql = (
            f"INSERT INTO {t}_reads (ns, key, at, hits) SELECT ?1, ?2, ?3, ?4 "
            f"WHERE EXISTS (SELECT 1 FROM {t} WHERE ns = ?1 AND key = ?2) "
            "ON CONFLICT (ns, key) DO UPDATE SET at = max(at, excluded.at), "
            "hits = hits + excluded.hits"
        )

        def work(conn: sqlite3.Connection) -> None:
            with self._transaction(conn):
                conn.executemany(sql, rows)

        try:
            self._run("record reads", work)
        except BaseException:
            # Nothing was recorded (the transaction rolled back): keep the
            # reads pending for the next flush. Above all on the async fast
            # path, where an inline attempt on a locked database raises
            # WouldBlock and the call is run again in a worker thread.
            for place, (at, hits) in pending.items():
                newer = self._pending.get(place)
                if newer is None:
                    self._pending[place] = [at, hits]
                else:
                    newer[0], newer[1] = max(at, newer[0]), hits + newer[1]
            raise

    # -- multi-key writes ---------------------------------------------------------

    def update_many(self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]) -> R:
        """As the plain store's, with the deletions applied before the writes.

        The triggers check the limits after every row, so a commit that
        deletes one key and adds another to a full store must delete first;
        the keys are distinct, so the order changes nothing else.
        """

        def deletions_first(records: Any) -> Any:
            actions, result = decide(records)
            ordered: dict[str, Any] = {k: a for k, a in actions.items() if a is DELETE}
            ordered.update((k, a) for k, a in actions.items() if a is not DELETE)
            return ordered, result

        if self._pending:
            self.flush_reads()
        result: R = super().update_many(ns, keys, now, deletions_first)
        return result

    # -- stats --------------------------------------------------------------

    def stats(self, ns: str, now: int) -> dict[str, Any]:
        out = super().stats(ns, now)
        row = self._one(
            "stats",
            f"SELECT evictions, max_keys, max_bytes FROM {self._table}_bounds",
            (),
        )
        limits = Limits(row[1], row[2], self._limits.policy)
        return {**out, "evictions": int(row[0]), **limits.stats()}

    def close(self) -> None:
        if getattr(self, "_pending", None) and not self._closed:
            # The ranking is a hint: losing some reads is harmless.
            with contextlib.suppress(KVError):
                self.flush_reads()
        super().close()


def _flushing(method: Any) -> Any:
    def write(self: BoundedSQLiteBackend, *args: Any, **kwargs: Any) -> Any:
        if self._pending:
            self.flush_reads()
        return method(self, *args, **kwargs)

    write.__name__ = method.__name__
    write.__doc__ = method.__doc__
    return write


for _name in WRITE_METHODS:
    if _name in vars(BoundedSQLiteBackend):
        continue  # overridden above, flushing itself
    _method = getattr(SQLiteBackend, _name, None)
    if _method is not None:
        setattr(BoundedSQLiteBackend, _name, _flushing(_method))
