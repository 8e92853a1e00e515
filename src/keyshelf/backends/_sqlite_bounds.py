"""Bounded SQLite stores: limits kept by triggers, in the database file itself.

Rules in :mod:`._bounds`. The layout, beside keyshelf's data table ``t``:

* ``t_bounds``: one row with the limits (``max_keys``, ``max_bytes``,
  ``policy``), the running totals (``keys``, ``bytes``), a logical clock
  (``tick``, one step per write) and the eviction count;
* ``t_ranks``: one row per record, ``(ns, key, rank, size)``, indexed by
  ``rank``: the eviction order (lowest rank goes first). LRU: the tick of the
  last use; LFU: the number of uses; FIFO: the tick of the insertion;
* three triggers on ``t`` (``AFTER INSERT``, ``AFTER UPDATE``, ``AFTER
  DELETE``) that keep both current and, after a write that took the store
  above a limit, evict (``DELETE`` of the lowest-ranked rows, never the row
  just written) or, under ``"none"``, ``RAISE(ABORT)``: SQLite then undoes
  the whole statement, and a transaction's caller rolls back the rest.

Because the triggers live in the file, every write path of every process
(single statements, ``update``/``update_many`` transactions, imports) is
bound by them, including keyshelf versions that know nothing of bounds:
those refuse a table with triggers at open. Reads do not write: an LRU or LFU
store remembers which keys this process read and adds them to the ranking in
one transaction at the next write of this process, when 1,024 distinct keys
are pending, or a second after the last flush, whichever comes first.
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
from ._bounds import WRITE_METHODS, Limits
from .sqlite import _SIZE, SQLiteBackend, _tokens

#: The messages the triggers abort with (mapped to keyshelf's errors).
FULL = "keyshelf: store full"
TOO_LARGE = "keyshelf: value larger than max_bytes"

#: Pending reads that make a flush (distinct keys).
FLUSH_KEYS = 1024
#: Seconds after which pending reads are flushed by the next read.
FLUSH_SECONDS = 1.0


def _size(row: str) -> str:
    return _SIZE.replace("type", f"{row}.type").replace("value", f"{row}.value")


def bounds_table_sql(t: str) -> str:
    return (
        f"CREATE TABLE {t}_bounds (id INTEGER PRIMARY KEY CHECK (id = 0), "
        "max_keys INTEGER, max_bytes INTEGER, policy TEXT NOT NULL, "
        "keys INTEGER NOT NULL, bytes INTEGER NOT NULL, tick INTEGER NOT NULL, "
        "evictions INTEGER NOT NULL, evicting INTEGER NOT NULL)"
    )


def ranks_table_sql(t: str) -> str:
    return (
        f"CREATE TABLE {t}_ranks (ns TEXT NOT NULL, key TEXT NOT NULL, "
        "rank INTEGER NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )


def ranks_index_sql(t: str) -> str:
    return f"CREATE INDEX {t}_ranks_order ON {t}_ranks (rank)"


def _write_trigger_sql(t: str, event: str) -> str:
    """The AFTER INSERT / AFTER UPDATE trigger: account, rank, refuse or evict."""
    b, r = f"{t}_bounds", f"{t}_ranks"
    size = _size("new")
    mine = "ns = new.ns AND key = new.key"
    over_keys = "(max_keys IS NOT NULL AND keys > max_keys)"
    over_bytes = "(max_bytes IS NOT NULL AND bytes > max_bytes)"
    # Keys beyond the goal max_keys - key_headroom(max_keys) (see _bounds).
    headroom = "min(64, max_keys / 16)"
    byte_goal = "(max_bytes - max_bytes / 16)"
    return f"""CREATE TRIGGER {t}_bounds_{event.lower()} AFTER {event} ON {t}
BEGIN
    UPDATE {b} SET
        keys = keys + NOT EXISTS (SELECT 1 FROM {r} WHERE {mine}),
        bytes = bytes + {size} - coalesce((SELECT size FROM {r} WHERE {mine}), 0),
        tick = tick + 1;
    UPDATE {r} SET size = {size}, rank = (SELECT CASE policy
            WHEN 'lfu' THEN {r}.rank + 1
            WHEN 'fifo' THEN CASE WHEN new.version = 1 THEN tick ELSE {r}.rank END
            ELSE tick END FROM {b})
        WHERE {mine};
    INSERT INTO {r} (ns, key, rank, size)
        SELECT new.ns, new.key, CASE policy WHEN 'lfu' THEN 1 ELSE tick END, {size} FROM {b}
        WHERE NOT EXISTS (SELECT 1 FROM {r} WHERE {mine});
    SELECT RAISE(ABORT, '{TOO_LARGE}') FROM {b}
        WHERE max_bytes IS NOT NULL AND {size} > max_bytes;
    SELECT RAISE(ABORT, '{FULL}') FROM {b}
        WHERE policy = 'none' AND ({over_keys} OR {over_bytes});
    UPDATE {b} SET evicting = 1 WHERE policy <> 'none' AND ({over_keys} OR {over_bytes});
    DELETE FROM {t} WHERE (SELECT evicting FROM {b}) AND (ns, key) IN (
        SELECT ns, key FROM {r} WHERE NOT ({mine}) ORDER BY rank
        LIMIT (SELECT CASE WHEN {over_keys} THEN keys - max_keys + {headroom} ELSE 0 END
               FROM {b}));
    DELETE FROM {t} WHERE (SELECT evicting AND max_bytes IS NOT NULL AND bytes > {byte_goal}
                           FROM {b}) AND (ns, key) IN (
        SELECT ns, key FROM (
            SELECT ns, key, size, sum(size) OVER (ORDER BY rank ROWS UNBOUNDED PRECEDING) AS freed
            FROM {r} WHERE NOT ({mine}))
        WHERE freed - size < (SELECT bytes - {byte_goal} FROM {b}));
    UPDATE {b} SET evicting = 0 WHERE evicting;
END"""


def _delete_trigger_sql(t: str) -> str:
    b, r = f"{t}_bounds", f"{t}_ranks"
    mine = "ns = old.ns AND key = old.key"
    return f"""CREATE TRIGGER {t}_bounds_delete AFTER DELETE ON {t}
BEGIN
    UPDATE {b} SET keys = keys - 1,
        bytes = bytes - (SELECT size FROM {r} WHERE {mine}),
        evictions = evictions + evicting
        WHERE EXISTS (SELECT 1 FROM {r} WHERE {mine});
    DELETE FROM {r} WHERE {mine};
END"""


def trigger_sql(t: str) -> dict[str, str]:
    """Name -> definition of every trigger a bounded store puts on table ``t``."""
    return {
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
    process then follows the new ones; a policy change restarts the ranking).
    """

    def __init__(self, path: Any, *, limits: Limits | None, **options: Any) -> None:
        super().__init__(path, **options)
        self._pending: dict[tuple[str, str], int] = {}
        self._flushed_at = time.monotonic()
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
                conn.execute(ranks_table_sql(t))
                conn.execute(ranks_index_sql(t))
                # Records already there join the ranking in key order, all
                # with the lowest rank (their uses are unknown).
                conn.execute(
                    f"INSERT INTO {t}_ranks (ns, key, rank, size) "
                    f"SELECT ns, key, 0, {_SIZE} FROM {t}"
                )
                conn.execute(
                    f"INSERT INTO {t}_bounds VALUES (0, NULL, NULL, 'lru', "
                    f"(SELECT count(*) FROM {t}_ranks), "
                    f"(SELECT coalesce(sum(size), 0) FROM {t}_ranks), 1, 0, 0)"
                )
                for sql in trigger_sql(t).values():
                    conn.execute(sql)
            self._check_shape(conn)
            current = self._read_limits(conn)
            if limits is not None and limits != current:
                if limits.policy != current.policy:
                    conn.execute(f"UPDATE {t}_ranks SET rank = 0")
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
            f"{t}_ranks": ranks_table_sql(t),
            f"{t}_ranks_order": ranks_index_sql(t),
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
            pending = self._pending
            slot = (ns, key)
            # LRU: the order of the dict is the order of last use.
            uses = pending.pop(slot, 0)
            pending[slot] = uses + 1
            if len(pending) >= FLUSH_KEYS or time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
                self.flush_reads()
        return value

    def flush_reads(self) -> None:
        """Add the reads pending in this process to the shared ranking (one transaction)."""
        self._flushed_at = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        t = self._table
        if self._limits.policy == "lfu":
            rows = [(uses, ns, key) for (ns, key), uses in pending.items()]
            sql = f"UPDATE {t}_ranks SET rank = rank + ? WHERE ns = ? AND key = ?"
        else:
            rows = [(i, ns, key) for i, (ns, key) in enumerate(pending, 1)]
            sql = (
                f"UPDATE {t}_ranks SET rank = (SELECT tick FROM {t}_bounds) + ? "
                "WHERE ns = ? AND key = ?"
            )

        def work(conn: sqlite3.Connection) -> None:
            with self._transaction(conn):
                conn.executemany(sql, rows)
                conn.execute(f"UPDATE {t}_bounds SET tick = tick + ?", (len(rows),))

        self._run("record reads", work)

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
