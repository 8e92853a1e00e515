"""Bounded SQLite stores: limits kept by triggers, in the database file itself.

Rules in :mod:`._bounds`. The layout (shape 2), beside keyshelf's data table ``t``:

* ``t_bounds``: one row with the limits (``max_keys``, ``max_bytes``,
  ``policy``), the running totals (``keys``; ``bytes``, NULL after an
  eviction on a store without ``max_bytes``, counted again when one is set)
  and the eviction count;
* ``t_reads``: the reads of LRU and LFU stores that processes flushed
  (``(ns, key, at, hits)``: the last read's instant and how many reads);
* five triggers on ``t``: ``AFTER INSERT``, ``AFTER UPDATE`` and ``AFTER
  DELETE`` ones that keep the totals current, and ``AFTER INSERT`` /
  ``AFTER UPDATE`` ones, written for the store's policy, that run only
  after a write that took the store above a limit and evict (``DELETE`` of
  the first rows in eviction order, never the row just written) or, under
  ``"none"``, ``RAISE(ABORT)``: SQLite then undoes the whole statement, and
  a transaction's caller rolls back.

The eviction order comes from the data table's own columns (``updated_at``
for LRU, ``created_at`` for FIFO, ``version`` for LFU), joined with
``t_reads`` only when it holds a read, so a write touches one more page than
on an unbounded store (the totals row); finding victims scans the table,
which the headroom makes rare: one scan per batch of
``min(4096, max_keys // 16)`` keys.

Shape 1 (keyshelf before this one) had policy-neutral evict triggers, a
``t_evicted`` table and ``bytes NOT NULL``; opening such a store for writing
upgrades it in the open's transaction (:meth:`BoundedSQLiteBackend._upgrade`),
and ``readonly=True`` reads it as it is. A keyshelf of shape 1 refuses a
store of shape 2 (its triggers are not the ones it knows).

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
from ._bounds import HEADROOM_DIVISOR, MAX_KEY_HEADROOM, POLICIES, WRITE_METHODS, Limits
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
    """The one-row table of limits and totals (``bytes`` NULL: not counted, see below)."""
    return (
        f"CREATE TABLE {t}_bounds (id INTEGER PRIMARY KEY CHECK (id = 0), "
        "max_keys INTEGER, max_bytes INTEGER, policy TEXT NOT NULL, "
        "keys INTEGER NOT NULL, bytes INTEGER, "
        "evictions INTEGER NOT NULL, evicting INTEGER NOT NULL)"
    )


def reads_table_sql(t: str) -> str:
    return (
        f"CREATE TABLE {t}_reads (ns TEXT NOT NULL, key TEXT NOT NULL, "
        "at INTEGER NOT NULL, hits INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )


def _v1_bounds_table_sql(t: str) -> str:
    """Shape 1's totals table: ``bytes`` always counted (NOT NULL)."""
    return bounds_table_sql(t).replace(" bytes INTEGER,", " bytes INTEGER NOT NULL,")


def _v1_evicted_table_sql(t: str) -> str:
    """Shape 1's table of the batch being evicted (shape 2 has none)."""
    return (
        f"CREATE TABLE {t}_evicted (ns TEXT NOT NULL, key TEXT NOT NULL, "
        "size INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )


def _order(policy: str, joined: bool) -> str:
    """The ORDER BY of ``policy``'s eviction order over ``t AS d``.

    ``joined``: with ``LEFT JOIN t_reads AS r`` (the flushed reads).

    LRU: the later of the last write (``updated_at``) and the last flushed
    read, a read winning a tie; LFU: writes (``version``) plus flushed reads,
    then LRU order; FIFO: ``created_at``. Ties end in key order. Without
    the join (no flushed read in the file) the same order needs no lookup
    per row: every read term is absent.
    """
    if policy == "fifo":
        return "d.created_at, d.ns, d.key"
    if not joined:
        first = "d.version, d.updated_at" if policy == "lfu" else "d.updated_at"
        return f"{first}, d.ns, d.key"
    recency = "max(d.updated_at, coalesce(r.at, d.updated_at))"
    read_last = "(r.at IS NOT NULL AND r.at >= d.updated_at)"
    if policy == "lfu":
        return f"d.version + coalesce(r.hits, 0), {recency}, d.ns, d.key"
    return f"{recency}, {read_last}, d.ns, d.key"


def _victims(t: str, policy: str, joined: bool, mine: str, limit: str) -> str:
    """Rows of ``t`` in ``policy``'s eviction order (not ``mine``), at most ``limit``.

    A scan of the table: the headroom makes it rare (one per batch of evictions).
    """
    join = f" LEFT JOIN {t}_reads AS r ON r.ns = d.ns AND r.key = d.key" if joined else ""
    return f"""SELECT d.ns, d.key, {_size("d")} AS size FROM {t} AS d{join}
            WHERE NOT (d.{mine.replace(" AND key", " AND d.key")})
            ORDER BY {_order(policy, joined)} LIMIT {limit}"""


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


def _evict_trigger_sql(t: str, event: str, policy: str) -> str:
    """The AFTER INSERT / AFTER UPDATE trigger that evicts, only when a limit is exceeded.

    Its SQL is written for ``policy`` (the order needs no per-row test of the
    policy); the store's triggers are recreated whenever its policy changes.
    SQLite runs the triggers of one event newest first, so this one, created
    before the totals trigger of its event, runs after it and sees the write
    counted. (The conformance tests check the limits after every write: a
    SQLite running them in another order would fail them.)

    The victims are one prefix of the eviction order: first the one that
    frees enough bytes (only over ``max_bytes``' goal), then as many more as
    the key goal still needs. They are deleted with the delete trigger's
    totals switched off (the ``evicting`` flag), and the totals are then
    counted again from the table: ``count(*)`` reads no row, and the bytes
    are summed only on a store with ``max_bytes`` (elsewhere they are not
    needed, and left NULL until a ``max_bytes`` is set).
    """
    b, r = f"{t}_bounds", f"{t}_reads"
    mine = "ns = new.ns AND key = new.key"
    # The goals: max_keys - key_headroom(max_keys), max_bytes - byte_headroom(max_bytes).
    key_goal = f"(max_keys - min({MAX_KEY_HEADROOM}, max_keys / {HEADROOM_DIVISOR}))"
    byte_goal = f"(max_bytes - max_bytes / {HEADROOM_DIVISOR})"
    # max(0, ...): a negative LIMIT is no limit in SQLite.
    key_count = (
        f"(SELECT CASE WHEN {_OVER_KEYS} THEN max(0, (SELECT count(*) FROM {t}) - {key_goal}) "
        f"ELSE 0 END FROM {b})"
    )
    byte_scan = (
        f"(SELECT CASE WHEN max_bytes IS NOT NULL AND bytes > {byte_goal} "
        f"THEN -1 ELSE 0 END FROM {b})"
    )
    # Without a flushed read in the file (a store only written to, or FIFO),
    # the victims are found without a lookup in t_reads per row: that lookup
    # was half of the scan's time. Of the two statements, the one whose
    # condition is false has a LIMIT of 0, which ends it before any scan (a
    # WHERE outside the subquery would not: the subquery runs first).
    if policy == "fifo":
        by_keys = f"""DELETE FROM {t} WHERE (ns, key) IN (
        SELECT ns, key FROM ({_victims(t, policy, False, mine, key_count)}));"""
        by_bytes = _victims(t, policy, False, mine, byte_scan)
    else:
        plain = f"(CASE WHEN EXISTS (SELECT 1 FROM {r}) THEN 0 ELSE {key_count} END)"
        joined = f"(CASE WHEN EXISTS (SELECT 1 FROM {r}) THEN {key_count} ELSE 0 END)"
        by_keys = f"""DELETE FROM {t} WHERE (ns, key) IN (
        SELECT ns, key FROM ({_victims(t, policy, False, mine, plain)}));
    DELETE FROM {t} WHERE (ns, key) IN (
        SELECT ns, key FROM ({_victims(t, policy, True, mine, joined)}));"""
        by_bytes = _victims(t, policy, True, mine, byte_scan)
    return f"""CREATE TRIGGER {t}_bounds_evict_{event.lower()} AFTER {event} ON {t}
WHEN (SELECT policy <> 'none' AND ({_OVER_KEYS} OR {_OVER_BYTES}) FROM {b})
BEGIN
    UPDATE {b} SET evicting = 1;
    DELETE FROM {t} WHERE (ns, key) IN (
        SELECT ns, key FROM (
            SELECT ns, key, size, sum(size) OVER (ROWS UNBOUNDED PRECEDING) AS freed
            FROM ({by_bytes}))
        WHERE freed - size < (SELECT bytes - {byte_goal} FROM {b}));
    {by_keys}
    UPDATE {b} SET evicting = 0,
        evictions = evictions + keys - (SELECT count(*) FROM {t}),
        keys = (SELECT count(*) FROM {t}),
        bytes = CASE WHEN max_bytes IS NULL THEN NULL
                     ELSE (SELECT coalesce(sum({_SIZE}), 0) FROM {t}) END;
END"""


def _delete_trigger_sql(t: str) -> str:
    """The AFTER DELETE trigger: the totals (unless evicting), and the key's reads."""
    b, r = f"{t}_bounds", f"{t}_reads"
    return f"""CREATE TRIGGER {t}_bounds_delete AFTER DELETE ON {t}
BEGIN
    UPDATE {b} SET keys = keys - 1, bytes = bytes - {_size("old")} WHERE NOT evicting;
    DELETE FROM {r} WHERE ns = old.ns AND key = old.key;
END"""


def _evict_order(policy: str) -> str:
    """The policy whose order the evict triggers follow ("none" never evicts: LRU's)."""
    return "lru" if policy == "none" else policy


def trigger_sql(t: str, policy: str) -> dict[str, str]:
    """Name -> definition of every trigger a bounded store of ``policy`` puts on ``t``."""
    # In creation order: each evict trigger before the totals trigger of its event.
    order = _evict_order(policy)
    return {
        f"{t}_bounds_evict_insert": _evict_trigger_sql(t, "INSERT", order),
        f"{t}_bounds_evict_update": _evict_trigger_sql(t, "UPDATE", order),
        f"{t}_bounds_insert": _write_trigger_sql(t, "INSERT"),
        f"{t}_bounds_update": _write_trigger_sql(t, "UPDATE"),
        f"{t}_bounds_delete": _delete_trigger_sql(t),
    }


def _v1_trigger_sql(t: str) -> dict[str, str]:
    """The triggers of shape 1 (keyshelf before policy-specific triggers), any policy."""
    b, r = f"{t}_bounds", f"{t}_reads"
    return {
        f"{t}_bounds_evict_insert": _v1_evict_trigger_sql(t, "INSERT"),
        f"{t}_bounds_evict_update": _v1_evict_trigger_sql(t, "UPDATE"),
        f"{t}_bounds_insert": _write_trigger_sql(t, "INSERT"),
        f"{t}_bounds_update": _write_trigger_sql(t, "UPDATE"),
        f"{t}_bounds_delete": f"""CREATE TRIGGER {t}_bounds_delete AFTER DELETE ON {t}
WHEN NOT (SELECT evicting FROM {b})
BEGIN
    UPDATE {b} SET keys = keys - 1, bytes = bytes - {_size("old")};
    DELETE FROM {r} WHERE ns = old.ns AND key = old.key;
END""",
    }


def is_ours(t: str, name: str, sql: str | None) -> bool:
    """True if trigger ``name`` on ``t`` is exactly one a bounded store creates.

    Any policy's, and shape 1's (which an open of the store upgrades).
    """
    if sql is None:
        return False
    found = _tokens(sql)
    shapes = [trigger_sql(t, policy) for policy in POLICIES] + [_v1_trigger_sql(t)]
    return any(name in want and _tokens(want[name]) == found for want in shapes)


def _v1_victims(t: str, mine: str, limit: str) -> str:
    """Shape 1's victims: the order of :func:`_order`, the policy tested per row.

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


def _v1_evict_trigger_sql(t: str, event: str) -> str:
    """Shape 1's evict trigger (any policy): recognised, to be upgraded at open.

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
        SELECT ns, key, size FROM ({_v1_victims(t, mine, key_count)});
    INSERT INTO {e} (ns, key, size)
        SELECT ns, key, size FROM (
            SELECT ns, key, size, sum(size) OVER (ROWS UNBOUNDED PRECEDING) AS freed
            FROM ({_v1_victims(t, mine, byte_scan)})) AS v
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
            # Reads only: shape 1 (see _upgrade) reads the same.
            return self._read_limits(conn)
        with self._transaction(conn):
            fresh = not has_bounds(conn, t)
            if fresh:
                if limits is None:
                    raise IncompatibleStoreError(f"{self.path}: table {t} is not bounded")
                conn.execute(bounds_table_sql(t))
                conn.execute(reads_table_sql(t))
                conn.execute(
                    f"INSERT INTO {t}_bounds SELECT 0, NULL, NULL, 'lru', count(*), "
                    f"coalesce(sum({_SIZE}), 0), 0, 0 FROM {t}"
                )
                self._create_triggers(conn, "lru")
            elif self._shape(conn) == 1:
                self._upgrade(conn)
            current = self._read_limits(conn)
            self._check_shape(conn, current.policy)
            if limits is not None and limits != current:
                conn.execute(
                    f"UPDATE {t}_bounds SET max_keys = ?, max_bytes = ?, policy = ?",
                    (limits.max_keys, limits.max_bytes, limits.policy),
                )
                if limits.max_bytes is not None:
                    # The bytes are not counted while no max_bytes is set (NULL).
                    conn.execute(
                        f"UPDATE {t}_bounds SET bytes = (SELECT coalesce(sum({_SIZE}), 0) "
                        f"FROM {t}) WHERE bytes IS NULL"
                    )
                if _evict_order(limits.policy) != _evict_order(current.policy):
                    self._create_triggers(conn, limits.policy)
                current = limits
        return current

    def _create_triggers(self, conn: sqlite3.Connection, policy: str) -> None:
        """(Re)create every trigger, in the order that runs the totals before eviction."""
        t = self._table
        for name in trigger_sql(t, policy):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        for sql in trigger_sql(t, policy).values():
            conn.execute(sql)

    def _found(self, conn: sqlite3.Connection, names: Sequence[str]) -> dict[str, str | None]:
        rows = conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE name IN ({', '.join('?' * len(names))})",
            tuple(names),
        ).fetchall()
        return {name: sql for name, sql in rows}

    def _shape(self, conn: sqlite3.Connection) -> int:
        """1 if the file holds shape 1 exactly (keyshelf before this one), else 2.

        Shape 1: policy-neutral evict triggers, a ``t_evicted`` table and
        ``bytes NOT NULL``. Anything that is neither shape is refused by
        :meth:`_check_shape`.
        """
        t = self._table
        want = {
            f"{t}_bounds": _v1_bounds_table_sql(t),
            f"{t}_reads": reads_table_sql(t),
            f"{t}_evicted": _v1_evicted_table_sql(t),
            **_v1_trigger_sql(t),
        }
        found = self._found(conn, tuple(want))
        same = all(
            found.get(name) is not None and _tokens(str(found[name])) == _tokens(sql)
            for name, sql in want.items()
        )
        return 1 if same else 2

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """Shape 1 -> 2, inside the open's transaction (all or nothing).

        The totals row is copied as it is (its counts are exact), the empty
        ``t_evicted`` dropped, and the triggers replaced by the policy's own.
        A process of the previous keyshelf that still has the store open
        keeps working: the triggers, in the file, bound its writes too. One
        that opens it afterwards refuses it (the triggers are not the ones
        it knows), which is an error, never a misread.
        """
        t = self._table
        for name in _v1_trigger_sql(t):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute(f"DROP TABLE {t}_evicted")
        conn.execute(f"ALTER TABLE {t}_bounds RENAME TO {t}_bounds_shape1")
        conn.execute(bounds_table_sql(t))
        conn.execute(f"INSERT INTO {t}_bounds SELECT * FROM {t}_bounds_shape1")
        conn.execute(f"DROP TABLE {t}_bounds_shape1")
        policy = conn.execute(f"SELECT policy FROM {t}_bounds").fetchone()[0]
        self._create_triggers(conn, policy)

    def _check_shape(self, conn: sqlite3.Connection, policy: str) -> None:
        t = self._table
        want = {
            f"{t}_bounds": bounds_table_sql(t),
            f"{t}_reads": reads_table_sql(t),
            **trigger_sql(t, policy),
        }
        found = self._found(conn, tuple(want))
        for name, sql in want.items():
            if found.get(name) is None or _tokens(str(found[name])) != _tokens(sql):
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
