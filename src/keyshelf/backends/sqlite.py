"""The embedded SQLite backend (the default): ``sqlite:///path.db`` or a bare path.

Layout: one ``WITHOUT ROWID`` table keyed by ``(ns, key)`` (namespace and key
in separate columns, so no choice of characters can make two namespaces
collide), a type-tag column, the payload stored natively (integers as SQLite
integers, so increments run in SQL), expiry and timestamps as integer
milliseconds, and a partial index on expiry. A second table records the
schema version. Both live beside an application's own tables, which are never
touched.

Guarantees:

* every operation is one SQL statement, or one ``BEGIN IMMEDIATE``
  transaction for read-modify-write operations, so nothing is ever lost
  between threads or processes sharing the file;
* every query filters expired rows, so an expired key is invisible before it
  is purged;
* patterns with a literal prefix are served by a primary-key range scan, with
  keyshelf's own matcher applied on top;
* connections are long-lived, one per thread, in WAL mode with
  ``synchronous=NORMAL`` (``durable=true`` selects ``FULL``), a busy timeout,
  and a bounded retry on ``database is locked``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote

from .._show import show
from ..codec import TAG_BOOL, TAG_FLOAT, TAG_INT, TAG_NONE
from ..errors import (
    BackendError,
    BackendUnavailableError,
    IncompatibleStoreError,
    InvalidURLError,
    StoreClosedError,
)
from ..options import as_bool, as_number, as_path, as_str, refuse_unknown
from ..patterns import Matcher, prefix_upper_bound
from ..records import INT64_MAX, INT64_MIN, Decision, R, Record, Value, Write, stats_dict
from ._bridge import AsyncBridge
from .base import Backend

SCHEMA_VERSION = 1
_HEADER = b"SQLite format 3\x00"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_RETRIES = 8
_COLUMNS = (
    "ns",
    "key",
    "type",
    "value",
    "expires_at",
    "meta",
    "created_at",
    "updated_at",
    "version",
)
_MMAP_SIZE = 2**31 - 2**16  # SQLite's default ceiling (SQLITE_MAX_MMAP_SIZE)
_CACHE_KIB = 64 * 1024

T = TypeVar("T")

# SQL for "the row is live at ?now".
_LIVE = "(expires_at IS NULL OR expires_at > {now})"

# The documented size of a payload (codec.payload_size), computed in SQL.
_SIZE = (
    f"CASE type WHEN '{TAG_NONE}' THEN 0 WHEN '{TAG_BOOL}' THEN 1 "
    f"WHEN '{TAG_INT}' THEN 8 WHEN '{TAG_FLOAT}' THEN 8 "
    "ELSE length(CAST(value AS BLOB)) END"
)


def _check_not_truncated(path: Path, header: bytes) -> None:
    """Refuse a database file shorter than its own header says it is.

    SQLite reads missing pages as zeros and only notices when it meets one,
    perhaps in the middle of a write. The header's page count is trusted only
    when SQLite would trust it (change counter = version-valid-for), and not
    while a WAL or rollback journal beside the file may still supply pages.
    """
    if len(header) < 100:
        raise IncompatibleStoreError(
            f"{path} is truncated: {len(header)} bytes, shorter than an SQLite header"
        )
    if any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-journal")):
        return
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if pages and header[24:28] == header[92:96]:
        size = path.stat().st_size
        if size < pages * page_size:
            raise IncompatibleStoreError(
                f"{path} is truncated: {size} bytes, its header says {pages * page_size}"
            )


class SQLiteBackend(Backend):
    """Keyshelf's tables in one SQLite file, shared safely by threads and processes."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "keyshelf",
        durable: bool = False,
        timeout: float = 30.0,
        journal_mode: str | None = None,
    ) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise InvalidURLError(f"SQLite table name {table!r} is not a plain identifier")
        if journal_mode is not None and journal_mode.upper() not in {
            "WAL",
            "DELETE",
            "TRUNCATE",
            "PERSIST",
            "MEMORY",
        }:
            raise InvalidURLError(f"Unknown SQLite journal_mode {show(journal_mode)}")
        if timeout <= 0:
            raise InvalidURLError("SQLite timeout must be positive")
        self.path = Path(path)
        self.location = str(self.path)
        self._table = table
        self._meta_table = f"{table}_meta"
        self._durable = durable
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._closed = False
        self._prepare_file(journal_mode)
        self._sql = _Statements(table)

    # -- opening ------------------------------------------------------------

    def _prepare_file(self, journal_mode: str | None) -> None:
        path = self.path
        if path.is_dir():
            raise IncompatibleStoreError(f"{path} is a directory, not an SQLite database file")
        if path.exists() and not path.is_file():
            raise IncompatibleStoreError(f"{path} is not a regular file")
        fresh = not path.exists() or path.stat().st_size == 0
        if not fresh:
            try:
                with path.open("rb") as handle:
                    header = handle.read(100)
            except OSError as exc:
                raise BackendUnavailableError(f"Cannot read {path}: {exc.strerror}") from exc
            if header[: len(_HEADER)] != _HEADER:
                raise IncompatibleStoreError(f"{path} is not an SQLite database")
            _check_not_truncated(path, header)
        elif not path.parent.exists():
            raise BackendUnavailableError(
                f"Cannot create {path}: directory {path.parent} does not exist"
            )
        conn = self._connection()
        try:
            version = self._schema_version(conn)
            if version is not None and version > SCHEMA_VERSION:
                raise IncompatibleStoreError(
                    f"{path} holds keyshelf schema version {version}; "
                    f"this keyshelf reads up to version {SCHEMA_VERSION}: upgrade keyshelf"
                )
            if journal_mode is not None:
                conn.execute(f"PRAGMA journal_mode={journal_mode}")
            elif fresh:
                conn.execute("PRAGMA journal_mode=WAL")
            if version is None:
                self._create_schema(conn)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._error(exc, "open") from exc
        except BaseException:
            self.close()
            raise

    def _schema_version(self, conn: sqlite3.Connection) -> int | None:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (self._meta_table,)
        ).fetchone()
        if row is None:
            return None
        foreign = IncompatibleStoreError(
            f"{self.path}: table {self._meta_table} exists but is not keyshelf's; "
            f"open the store with table='...' to give keyshelf's tables other names"
        )
        try:
            found = conn.execute(
                f"SELECT value FROM {self._meta_table} WHERE name='schema_version'"
            ).fetchone()
        except sqlite3.OperationalError as exc:  # other columns: the application's table
            raise foreign from exc
        if found is None or not str(found[0]).isdigit():
            raise foreign
        return int(found[0])

    def _refuse_foreign_objects(self, conn: sqlite3.Connection) -> None:
        """The application's own table, view or index may not sit under keyshelf's names."""
        t = self._table
        ours = False  # keyshelf's own data table, left without its meta table
        for name in (t, self._meta_table, f"{t}_expiry"):
            row = conn.execute(
                "SELECT type, tbl_name FROM sqlite_master WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                continue
            if row[0] == "table" and name == t:
                ours = [c[1] for c in conn.execute(f"PRAGMA table_info({t})")] == list(_COLUMNS)
                if ours:
                    continue
            if row[0] == "index" and row[1] == t and ours:
                continue
            raise IncompatibleStoreError(
                f"{self.path} already has a {row[0]} named {name} that is not keyshelf's; "
                f"open the store with table='...' to give keyshelf's tables other names"
            )

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        t, m = self._table, self._meta_table
        with self._transaction(conn):
            # Another process may have created it since we looked.
            if self._schema_version(conn) is not None:
                return
            self._refuse_foreign_objects(conn)
            conn.execute(f"CREATE TABLE {m} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute(
                f"INSERT INTO {m} (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {t} (
                    ns TEXT NOT NULL,
                    key TEXT NOT NULL,
                    type TEXT NOT NULL,
                    value BLOB,
                    expires_at INTEGER,
                    meta BLOB,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    PRIMARY KEY (ns, key)
                ) WITHOUT ROWID"""
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {t}_expiry ON {t} (expires_at) "
                "WHERE expires_at IS NOT NULL"
            )

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreClosedError(f"The store {self.path} is closed")
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
            # Reads of the database file through a memory map, not a read()
            # per page. Writes cannot use the map: every page a write
            # transaction touches goes through the page cache, so it holds up
            # to 64 MiB (SQLite's default is 2 MiB), enough for the interior
            # pages and a hot set of leaves of a multi-GB file.
            conn.execute(f"PRAGMA mmap_size={_MMAP_SIZE}")
            conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from exc
        with self._guard:
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    # -- plumbing -----------------------------------------------------------

    def _error(self, exc: sqlite3.Error, action: str) -> BackendError:
        message = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and (
            "malformed" in message or "not a database" in message
        ):
            return IncompatibleStoreError(f"{self.path} is corrupt or not a database: {message}")
        if "readonly" in message or "unable to open" in message:
            return BackendUnavailableError(f"Cannot write {self.path}: {message}")
        return BackendError(f"SQLite error on {self.path} during {action}: {message}")

    def _run(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` with this thread's connection, retrying busy errors."""
        delay = 0.005
        for attempt in range(_RETRIES):
            conn = self._connection()
            try:
                return work(conn)
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or attempt == _RETRIES - 1:
                    raise self._error(exc, action) from exc
            except sqlite3.Error as exc:
                raise self._error(exc, action) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front: two read-modify-write
        # transactions can then never deadlock on a lock upgrade.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _after_fast(
        self, exc: Exception, action: str, work: Callable[[sqlite3.Connection], T]
    ) -> T:
        """Finish a call whose first attempt ran inline (the hot paths) and raised.

        The inline attempt is ``work(self._local.conn)`` without :meth:`_run`'s
        frame: an AttributeError means this thread has no connection yet (or
        the store was closed), and a busy error left nothing written; both go
        through :meth:`_run`, which connects, or raises StoreClosedError, and
        retries. Any other error is reported exactly as :meth:`_run` would.
        """
        if isinstance(exc, sqlite3.Error):
            busy = isinstance(exc, sqlite3.OperationalError) and (
                "locked" in str(exc) or "busy" in str(exc)
            )
            if not busy:
                raise self._error(exc, action) from exc
        return self._run(action, work)

    def _query(self, action: str, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._run(action, lambda conn: conn.execute(sql, params).fetchall())

    def _one(self, action: str, sql: str, params: Sequence[Any]) -> Any:
        return self._run(action, lambda conn: conn.execute(sql, params).fetchone())

    def _change(self, action: str, sql: str, params: Sequence[Any]) -> int:
        return self._run(action, lambda conn: conn.execute(sql, params).rowcount)

    # -- primitives ---------------------------------------------------------

    def get(self, ns: str, key: str, now: int) -> Value | None:
        params = (ns, key, now)
        try:
            row = self._local.conn.execute(self._sql.get, params).fetchone()
        except (AttributeError, sqlite3.Error) as exc:
            sql = self._sql.get
            row = self._after_fast(exc, "get", lambda conn: conn.execute(sql, params).fetchone())
        return None if row is None else (row[0], row[1])

    def get_record(self, ns: str, key: str, now: int) -> Record | None:
        row = self._one("get", self._sql.get_record, (ns, key, now))
        return None if row is None else Record(*row)

    def exists(self, ns: str, key: str, now: int) -> bool:
        params = (ns, key, now)
        try:
            row = self._local.conn.execute(self._sql.exists, params).fetchone()
        except (AttributeError, sqlite3.Error) as exc:
            sql = self._sql.exists
            row = self._after_fast(exc, "exists", lambda conn: conn.execute(sql, params).fetchone())
        return row is not None

    def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        found: dict[str, Value] = {}
        unique = list(dict.fromkeys(keys))
        # Chunks stay under SQLite's bound-parameter limit.
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            sql = self._sql.get_many(len(chunk))
            for key, tag, payload in self._query("get_many", sql, (ns, now, *chunk)):
                found[key] = (tag, payload)
        return found

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
        keep_meta = not isinstance(meta, (bytes, type(None)))
        stored_meta = None if keep_meta else meta
        if xx:
            params: tuple[Any, ...] = (
                ns, key, value[0], value[1], expires_at, stored_meta, now, keep_ttl, keep_meta
            )  # fmt: skip
            return self._change("set", self._sql.put_xx, params) > 0
        # The statement for these flags: constants in the SQL, not parameters,
        # cost SQLite less per call (a plain set: 11.8 -> 10.4 us in raw sqlite3).
        sql = self._sql.put_by_flags[bool(keep_ttl), keep_meta, bool(nx)]
        params = (ns, key, value[0], value[1], expires_at, stored_meta, now)
        try:
            changed = self._local.conn.execute(sql, params).rowcount
        except (AttributeError, sqlite3.Error) as exc:
            changed = self._after_fast(exc, "set", lambda conn: conn.execute(sql, params).rowcount)
        return changed > 0  # type: ignore[no-any-return]

    def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        def work(conn: sqlite3.Connection) -> R:
            with self._transaction(conn):
                row = conn.execute(self._sql.get_record, (ns, key, now)).fetchone()
                old = None if row is None else Record(*row)
                write, result = decide(old)
                if write is not None:
                    if old is None:
                        created, version = now, 1
                    else:
                        created, version = old.created_at, old.version + 1
                    row = (ns, key, write.tag, write.payload, write.expires_at, write.meta)
                    conn.execute(self._sql.replace, (*row, created, now, version))
                return result

        return self._run("update", work)

    def increment(self, ns: str, key: str, delta: int | float, now: int) -> int | float:
        # Fast path: one UPDATE for a live int/float that stays in range; any
        # other case (missing key, wrong type, overflow, special floats) runs
        # the shared decision in one transaction.
        if (INT64_MIN <= delta <= INT64_MAX) if type(delta) is int else not math.isnan(delta):
            params = (ns, key, delta, now)
            try:
                row = self._local.conn.execute(self._sql.increment, params).fetchone()
            except (AttributeError, sqlite3.Error) as exc:
                sql = self._sql.increment
                row = self._after_fast(
                    exc, "increment", lambda conn: conn.execute(sql, params).fetchone()
                )
            if row is not None:
                return row[0]  # type: ignore[no-any-return]
        return super().increment(ns, key, delta, now)

    def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        rows = [(ns, key, tag, payload, expires_at, now) for key, (tag, payload) in items]

        def work(conn: sqlite3.Connection) -> None:
            with self._transaction(conn):
                conn.executemany(self._sql.put_many, rows)

        self._run("mset", work)

    def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        unique = list(dict.fromkeys(keys))
        if len(unique) == 1:
            params = (ns, unique[0])
            try:
                rows = self._local.conn.execute(self._sql.delete_one, params).fetchall()
            except (AttributeError, sqlite3.Error) as exc:
                sql = self._sql.delete_one
                rows = self._after_fast(
                    exc, "delete", lambda conn: conn.execute(sql, params).fetchall()
                )
            return [key for key, expires in rows if expires is None or expires > now]

        def work(conn: sqlite3.Connection) -> list[str]:
            removed: list[str] = []
            with self._transaction(conn):
                for start in range(0, len(unique), 500):
                    chunk = unique[start : start + 500]
                    cursor = conn.execute(self._sql.delete_many(len(chunk)), (ns, *chunk))
                    removed.extend(k for k, exp in cursor.fetchall() if exp is None or exp > now)
            return removed

        return self._run("delete", work)

    def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        if expires_at is None:
            return self._change("persist", self._sql.persist, (ns, key, now)) > 0
        return self._change("expire", self._sql.expire, (ns, key, now, expires_at)) > 0

    def _range(self, matcher: Matcher, after: str | None = None) -> tuple[str, list[Any]]:
        """SQL condition and parameters bounding keys by the literal prefix.

        With ``after``, the lower bound is the larger of the prefix and
        ``after`` (exclusive), as one condition: given both ``key >= prefix``
        and ``key > after``, SQLite seeks by the first and filters by the
        second, so every page of a stream would rescan the range from its
        start (quadratic). One bound makes every page a seek.
        """
        if matcher.literal:
            if after is not None and matcher.prefix <= after:
                return "0", []
            return "key = ?", [matcher.prefix]
        upper = prefix_upper_bound(matcher.prefix)
        if after is not None and after >= matcher.prefix:
            low, low_args = "key > ?", [after]
        elif matcher.prefix:
            low, low_args = "key >= ?", [matcher.prefix]
        else:
            low, low_args = "1", []
        if matcher.prefix and upper is not None:
            return f"{low} AND key < ?", [*low_args, upper]
        return low, low_args

    def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        bound, params = self._range(matcher, after)
        columns = "key, type, value" if values else "key"
        sql = (
            f"SELECT {columns} FROM {self._table} WHERE ns = ? AND {bound} "
            f"AND {_LIVE.format(now='?')} ORDER BY key"
        )
        args: list[Any] = [ns, *params, now]
        match = None if _exact(matcher) else matcher.match
        if match is None and limit is not None:
            sql += " LIMIT ?"
            args.append(limit)

        def work(conn: sqlite3.Connection) -> list[tuple[str, Value | None]]:
            cursor = conn.execute(sql, args)
            if match is None:  # every row of the range matches; LIMIT is in the SQL
                if values:
                    return [(key, (tag, payload)) for key, tag, payload in cursor]
                return [(key, None) for (key,) in cursor]
            out: list[tuple[str, Value | None]] = []
            for row in cursor:
                if match is not None and not match(row[0]):
                    continue
                out.append((row[0], (row[1], row[2]) if values else None))
                if limit is not None and len(out) >= limit:
                    break
            return out

        return self._run("scan", work)

    def count(self, ns: str, matcher: Matcher, now: int) -> int:
        bound, params = self._range(matcher)
        where = f"ns = ? AND {bound} AND {_LIVE.format(now='?')}"
        if _exact(matcher):
            row = self._one(
                "count", f"SELECT count(*) FROM {self._table} WHERE {where}", (ns, *params, now)
            )
            return int(row[0])
        rows = self._query(
            "count", f"SELECT key FROM {self._table} WHERE {where}", (ns, *params, now)
        )
        return sum(1 for (key,) in rows if matcher.match(key))

    def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        bound, params = self._range(matcher)
        t = self._table

        def work(conn: sqlite3.Connection) -> int:
            with self._transaction(conn):
                if _exact(matcher):
                    rows = conn.execute(
                        f"DELETE FROM {t} WHERE ns = ? AND {bound} RETURNING expires_at",
                        (ns, *params),
                    ).fetchall()
                    return sum(1 for (exp,) in rows if exp is None or exp > now)
                doomed = [
                    (key, exp)
                    for key, exp in conn.execute(
                        f"SELECT key, expires_at FROM {t} WHERE ns = ? AND {bound}", (ns, *params)
                    )
                    if matcher.match(key)
                ]
                for start in range(0, len(doomed), 500):
                    chunk = [key for key, _ in doomed[start : start + 500]]
                    conn.execute(self._sql.delete_many(len(chunk)), (ns, *chunk))
                return sum(1 for _, exp in doomed if exp is None or exp > now)

        return self._run("delete_pattern", work)

    def namespaces(self, now: int) -> list[str]:
        # A skip-scan over the primary key: one probe per namespace.
        sql = f"SELECT DISTINCT ns FROM {self._table} WHERE {_LIVE.format(now='?')} ORDER BY ns"
        return [ns for (ns,) in self._query("namespaces", sql, (now,))]

    def purge_expired(self, ns: str | None, now: int) -> int:
        if ns is None:
            sql = f"DELETE FROM {self._table} WHERE expires_at <= ?"
            return self._change("delete_expired", sql, (now,))
        sql = f"DELETE FROM {self._table} WHERE expires_at <= ? AND ns = ?"
        return self._change("delete_expired", sql, (now, ns))

    def stats(self, ns: str, now: int) -> dict[str, Any]:
        sql = (
            f"SELECT count(*), count(*) FILTER (WHERE {_LIVE.format(now='?1')}), "
            f"count(*) FILTER (WHERE expires_at > ?1) FROM {self._table} WHERE ns = ?2"
        )
        total, active, with_ttl = self._one("stats", sql, (now, ns))
        return stats_dict(total, active, with_ttl)

    def total_size(self, ns: str, now: int) -> int:
        sql = (
            f"SELECT coalesce(sum({_SIZE}), 0) FROM {self._table} "
            f"WHERE ns = ? AND {_LIVE.format(now='?')}"
        )
        return int(self._one("storage_size", sql, (ns, now))[0])

    def sizes(self, ns: str, keys: Sequence[str], now: int) -> dict[str, int]:
        unique = list(dict.fromkeys(keys))
        marks = ", ".join("?" * len(unique))
        sql = (
            f"SELECT key, {_SIZE} FROM {self._table} WHERE ns = ? AND key IN ({marks}) "
            f"AND {_LIVE.format(now='?')}"
        )
        found = dict(self._query("storage_size", sql, (ns, *unique, now)))
        return {key: found[key] for key in unique if key in found}

    def scan_records(
        self, ns: str, now: int, after: str | None, limit: int
    ) -> list[tuple[str, Record]]:
        sql = self._sql.scan_records if after is not None else self._sql.scan_records_first
        params = (ns, now, limit, after) if after is not None else (ns, now, limit)
        return [(row[0], Record(*row[1:])) for row in self._query("scan_records", sql, params)]

    def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        # The plain-set upsert (no nx, keep_ttl or keep_meta) for every row, in
        # one transaction: the batch is all or nothing.
        rows = [
            (ns, key, w.tag, w.payload, w.expires_at, w.meta, now, False, False, False)
            for key, w in items
        ]

        def work(conn: sqlite3.Connection) -> None:
            with self._transaction(conn):
                conn.executemany(self._sql.put, rows)

        self._run("put_records", work)

    def close(self) -> None:
        with self._guard:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _put_statement(t: str, keep_ttl: bool, keep_meta: bool, nx: bool) -> str:
    """``_Statements.put`` with ``?8``, ``?9`` and ``?10`` replaced by these constants."""
    old_live = _LIVE.format(now="?7")
    expires = (
        f"CASE WHEN {old_live} THEN expires_at ELSE excluded.expires_at END"
        if keep_ttl
        else "excluded.expires_at"
    )
    meta = (
        f"CASE WHEN {old_live} THEN meta ELSE excluded.meta END" if keep_meta else "excluded.meta"
    )
    where = f" WHERE NOT {old_live}" if nx else ""
    return f"""
        INSERT INTO {t} (ns, key, type, value, expires_at, meta, created_at, updated_at, version)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)
        ON CONFLICT (ns, key) DO UPDATE SET
            type = excluded.type,
            value = excluded.value,
            expires_at = {expires},
            meta = {meta},
            created_at = CASE WHEN {old_live} THEN created_at ELSE excluded.created_at END,
            updated_at = excluded.updated_at,
            version = CASE WHEN {old_live} THEN version + 1 ELSE 1 END{where}"""


def _exact(matcher: Matcher) -> bool:
    """True if every key in the matcher's prefix range matches (no per-key test)."""
    return matcher.match_all or matcher.literal or matcher.prefix_only


class _Statements:
    """The SQL text of every statement, built once per table name."""

    def __init__(self, t: str) -> None:
        live = _LIVE.format(now="?3")
        self.get = f"SELECT type, value FROM {t} WHERE ns = ?1 AND key = ?2 AND {live}"
        self.exists = f"SELECT 1 FROM {t} WHERE ns = ?1 AND key = ?2 AND {live}"
        self.get_record = (
            "SELECT type, value, expires_at, meta, created_at, updated_at, version "
            f"FROM {t} WHERE ns = ?1 AND key = ?2 AND {live}"
        )
        old_live = _LIVE.format(now="?7")
        # ?1 ns ?2 key ?3 type ?4 value ?5 expires ?6 meta ?7 now ?8 keep_ttl ?9 keep_meta ?10 nx
        columns = "(ns, key, type, value, expires_at, meta, created_at, updated_at, version)"
        self.put = f"""
            INSERT INTO {t} {columns}
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)
            ON CONFLICT (ns, key) DO UPDATE SET
                type = excluded.type,
                value = excluded.value,
                expires_at = CASE WHEN ?8 AND {old_live}
                             THEN expires_at ELSE excluded.expires_at END,
                meta = CASE WHEN ?9 AND {old_live} THEN meta ELSE excluded.meta END,
                created_at = CASE WHEN {old_live}
                             THEN created_at ELSE excluded.created_at END,
                updated_at = excluded.updated_at,
                version = CASE WHEN {old_live} THEN version + 1 ELSE 1 END
            WHERE NOT ?10 OR NOT {old_live}"""
        # The same statement with the three flags as constants, one per combination.
        self.put_by_flags = {
            (keep_ttl, keep_meta, nx): _put_statement(t, keep_ttl, keep_meta, nx)
            for keep_ttl in (False, True)
            for keep_meta in (False, True)
            for nx in (False, True)
        }
        self.put_xx = f"""
            UPDATE {t} SET type = ?3, value = ?4,
                expires_at = CASE WHEN ?8 THEN expires_at ELSE ?5 END,
                meta = CASE WHEN ?9 THEN meta ELSE ?6 END,
                updated_at = ?7, version = version + 1
            WHERE ns = ?1 AND key = ?2 AND {old_live}"""
        # ?1 ns ?2 key ?3 type ?4 value ?5 expires ?6 now  (mset keeps live user metadata)
        live6 = _LIVE.format(now="?6")
        self.put_many = f"""
            INSERT INTO {t} {columns}
            VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?6, 1)
            ON CONFLICT (ns, key) DO UPDATE SET
                type = excluded.type,
                value = excluded.value,
                expires_at = excluded.expires_at,
                meta = CASE WHEN {live6} THEN meta ELSE NULL END,
                created_at = CASE WHEN {live6} THEN created_at ELSE excluded.created_at END,
                updated_at = excluded.updated_at,
                version = CASE WHEN {live6} THEN version + 1 ELSE 1 END"""
        self.replace = f"INSERT OR REPLACE INTO {t} {columns} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        # ?1 ns ?2 key ?3 delta ?4 now. Only a live int/float whose result stays
        # a finite float or a 64-bit int; everything else takes the slow path.
        live4 = _LIVE.format(now="?4")
        self.increment = f"""
            UPDATE {t} SET value = value + ?3, updated_at = ?4, version = version + 1,
                type = CASE WHEN type = '{TAG_INT}' AND typeof(?3) = 'integer'
                            THEN '{TAG_INT}' ELSE '{TAG_FLOAT}' END
            WHERE ns = ?1 AND key = ?2 AND {live4} AND (
                (type = '{TAG_INT}' AND typeof(?3) = 'integer' AND (
                    (?3 >= 0 AND value <= {INT64_MAX} - ?3)
                    OR (?3 < 0 AND value >= {INT64_MIN} - ?3)))
                OR ((type = '{TAG_FLOAT}' OR (type = '{TAG_INT}' AND typeof(?3) = 'real'))
                    AND abs(value + ?3) <= 1.7976931348623157e308
                    AND value + ?3 IS NOT NULL))
            RETURNING value"""
        self.delete_one = f"DELETE FROM {t} WHERE ns = ? AND key = ? RETURNING key, expires_at"
        self.persist = (
            f"UPDATE {t} SET expires_at = NULL WHERE ns = ?1 AND key = ?2 "
            f"AND expires_at IS NOT NULL AND expires_at > ?3"
        )
        self.expire = f"UPDATE {t} SET expires_at = ?4 WHERE ns = ?1 AND key = ?2 AND {live}"
        # ?1 ns ?2 now ?3 limit ?4 after: a range scan of the primary key.
        record_columns = "key, type, value, expires_at, meta, created_at, updated_at, version"
        self.scan_records_first = (
            f"SELECT {record_columns} FROM {t} WHERE ns = ?1 AND {_LIVE.format(now='?2')} "
            "ORDER BY key LIMIT ?3"
        )
        self.scan_records = (
            f"SELECT {record_columns} FROM {t} WHERE ns = ?1 AND key > ?4 "
            f"AND {_LIVE.format(now='?2')} ORDER BY key LIMIT ?3"
        )
        self._t = t
        # Texts of the batch statements by batch size (at most 500 of each).
        self._by_size: dict[tuple[str, int], str] = {}

    def get_many(self, n: int) -> str:
        sql = self._by_size.get(("get_many", n))
        if sql is None:
            sql = self._by_size[("get_many", n)] = (
                f"SELECT key, type, value FROM {self._t} WHERE ns = ?1 AND "
                f"key IN ({', '.join(f'?{i + 3}' for i in range(n))}) AND {_LIVE.format(now='?2')}"
            )
        return sql

    def delete_many(self, n: int) -> str:
        sql = self._by_size.get(("delete_many", n))
        if sql is None:
            marks = ", ".join("?" * n)
            sql = self._by_size[("delete_many", n)] = (
                f"DELETE FROM {self._t} WHERE ns = ? AND key IN ({marks}) RETURNING key, expires_at"
            )
        return sql


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``sqlite:///relative.db``, ``sqlite:////abs.db`` and bare paths."""
    if url.netloc:
        raise InvalidURLError(
            f"sqlite:// URLs take no host: use sqlite:///relative.db or sqlite:////abs.db, "
            f"got {url.geturl()!r}"
        )
    path = unquote(url.path[1:] if url.path.startswith("/") else url.path)
    if not path or path == ":memory:":
        raise InvalidURLError(
            "An SQLite store needs a file path (sqlite:///app.db); use memory:// for a "
            "store in memory"
        )
    as_path("SQLite file", path)
    table = as_str("table", options.pop("table", "keyshelf"))
    durable = as_bool("durable", options.pop("durable", False))
    timeout = as_number("timeout", options.pop("timeout", 30.0))
    journal_mode = options.pop("journal_mode", None)
    if journal_mode is not None:
        journal_mode = as_str("journal_mode", journal_mode)
    refuse_unknown("sqlite", options)
    backend = SQLiteBackend(
        path, table=table, durable=durable, timeout=timeout, journal_mode=journal_mode
    )
    # Blocking file I/O runs in worker threads, each with its own connection.
    return AsyncBridge(backend, threads=4) if asynchronous else backend
