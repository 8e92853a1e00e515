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
import enum
import functools
import math
import os
import random
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, quote, unquote

from .. import _inuse
from .._show import show
from ..changes import Change
from ..codec import TAG_BOOL, TAG_FLOAT, TAG_INT, TAG_NONE
from ..errors import (
    BackendError,
    BackendUnavailableError,
    ChangesCompactedError,
    IncompatibleStoreError,
    InvalidURLError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreNotFoundError,
)
from ..options import as_bool, as_number, as_path, as_str, refuse_unknown
from ..patterns import Matcher, prefix_upper_bound
from ..records import (
    DELETE,
    INT64_MAX,
    INT64_MIN,
    CommitOutcome,
    Decision,
    Keep,
    MultiDecision,
    Op,
    R,
    Record,
    SetOp,
    Value,
    Write,
    stats_dict,
)
from . import _sqlite_feed
from ._bounds import Limits, take_limits
from ._fastpath import WouldBlock
from ._feed_bridge import FeedBridge
from .base import Backend

SCHEMA_VERSION = 1
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


#: Seconds between two probes of ``PRAGMA data_version`` by a waiting watcher.
FEED_PROBE_INTERVAL = 0.005

_TRUNCATED_HEADER = 100  # an SQLite header is 100 bytes; no database file is shorter


def _tokens(sql: str) -> list[str]:
    """An SQL text as lower-case tokens: compares definitions whatever their layout."""
    return re.findall(r"\w+|[^\s\w]", sql.lower())


def _data_table_sql(t: str) -> str:
    return f"""CREATE TABLE {t} (
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


def _meta_table_sql(m: str) -> str:
    return f"CREATE TABLE {m} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


def _expiry_index_sql(t: str) -> str:
    return f"CREATE INDEX {t}_expiry ON {t} (expires_at) WHERE expires_at IS NOT NULL"


# Declared type and NOT NULL of each column of keyshelf's data table.
_COLUMN_SHAPES = (
    ("TEXT", 1),
    ("TEXT", 1),
    ("TEXT", 1),
    ("BLOB", 0),
    ("INTEGER", 0),
    ("BLOB", 0),
    ("INTEGER", 1),
    ("INTEGER", 1),
    ("INTEGER", 1),
)


def _file_uri(path: Path, mode: str) -> str:
    """An SQLite URI for ``path``: every byte of the name that URIs treat specially quoted.

    The absolute path keeps the URI free of an authority part (``file:///...``)
    and every later connection on the same file, whatever the current directory.
    """
    name = quote(os.fsencode(os.path.abspath(path)), safe="/")
    return f"file://{name}?mode={mode}"


class _State(enum.Enum):
    """What :meth:`SQLiteBackend._inspect` found under keyshelf's names."""

    ABSENT = "absent"  # none of keyshelf's tables
    PARTIAL = "partial"  # keyshelf's data table, without its meta table or expiry index
    READY = "ready"  # the complete schema


class SQLiteBackend(Backend):
    """Keyshelf's tables in one SQLite file, shared safely by threads and processes.

    Opening checks the file before anything is written to it, through SQLite
    only (keyshelf never opens a database file itself: closing any descriptor
    of it would drop this process's locks on it, see :mod:`._inuse`):

    * a directory, a special file, a file that is not an SQLite database, or
      one shorter than its own header says is refused with
      :class:`IncompatibleStoreError`;
    * keyshelf's tables, where they exist, must have exactly the shape keyshelf
      gives them (columns, declared types, ``PRIMARY KEY (ns, key)``, ``WITHOUT
      ROWID``, the expiry index, no other index and no trigger); anything else
      under keyshelf's names is refused with :class:`IncompatibleStoreError`
      naming the problem, and the file is left byte-for-byte unchanged.

    ``create=False`` refuses to create: a missing file, or an SQLite file
    without keyshelf's tables, raises :class:`StoreNotFoundError` and nothing
    is created or written. ``readonly=True`` opens the file with SQLite's
    ``mode=ro``: nothing is ever created or written, and every write raises
    :class:`ReadOnlyStoreError` (reads keep working while other processes
    write).
    """

    multi_key_atomic = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "keyshelf",
        durable: bool = False,
        timeout: float = 30.0,
        journal_mode: str | None = None,
        create: bool = True,
        readonly: bool = False,
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
        if journal_mode is not None and readonly:
            raise InvalidURLError(
                "journal_mode cannot be set on a store opened readonly=True "
                "(changing it writes the file)"
            )
        if timeout <= 0:
            raise InvalidURLError("SQLite timeout must be positive")
        self.path = Path(path)
        self.location = str(self.path)
        self._table = table
        self._meta_table = f"{table}_meta"
        self._durable = durable
        self._timeout = timeout
        self._create = create and not readonly
        self._readonly = readonly
        self._uri = _file_uri(self.path, "ro" if readonly else "rwc" if create else "rw")
        self._local = threading.local()
        # Writes run inline by the async fast path (_sqlite_fast), shared by its threads.
        self._inline_writes = [0]
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._closed = False
        self._held: tuple[int, int] | None = None
        # The change feed (_sqlite_feed): (schema version, feed on) last seen,
        # and the connection whose PRAGMA data_version is the watchers' doorbell.
        self._feed_seen: tuple[int, bool] = (-1, False)
        self._probe: sqlite3.Connection | None = None
        self._probe_lock = threading.Lock()
        self._prepare_file(journal_mode)
        self._sql = _Statements(table)

    # -- opening ------------------------------------------------------------

    def _prepare_file(self, journal_mode: str | None) -> None:
        # Only stat() here: keyshelf never opens the database file itself.
        path = self.path
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise BackendUnavailableError(f"Cannot read {path}: {exc.strerror}") from exc
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise IncompatibleStoreError(f"{path} is a directory, not an SQLite database file")
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise IncompatibleStoreError(f"{path} is not a regular file")
        if st is not None and _inuse.in_use(path, sidecars_only=True):
            # SQLite would open and close it as a database of its own, which
            # drops the locks the store's connections hold on it.
            raise IncompatibleStoreError(
                f"{path} is the -wal, -shm or -journal file of an open store, not a database"
            )
        if st is None:
            if not self._create:
                raise self._not_found("does not exist")
            if not path.parent.exists():
                raise BackendUnavailableError(
                    f"Cannot create {path}: directory {path.parent} does not exist"
                )
        elif 0 < st.st_size < _TRUNCATED_HEADER:
            raise IncompatibleStoreError(
                f"{path} is truncated or not an SQLite database: {st.st_size} bytes, "
                f"shorter than an SQLite header"
            )
        fresh = st is None or st.st_size == 0
        try:
            conn = self._connection(check=not fresh)
            state = self._inspect(conn)
            if state is _State.ABSENT and not self._create:
                raise self._not_found(f"has no keyshelf store (no table {self._table})")
            if journal_mode is not None:
                self._switch_journal(conn, journal_mode)
            elif fresh and not self._readonly:
                self._switch_journal(conn, "WAL")
            if state is not _State.READY and not self._readonly:
                self._create_schema(conn)
            elif not self._readonly and _sqlite_feed.needs_install(conn, self._table):
                with self._transaction(conn):  # the feed's triggers of shape 1: replaced
                    if _sqlite_feed.settings(conn, self._table) is not None:
                        _sqlite_feed.install(conn, self._table)
            self._held = _inuse.identity(path)
            if self._held is not None:
                _inuse.hold(self._held)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._error(exc, "open") from exc
        except BaseException:
            self.close()
            raise

    def _switch_journal(self, conn: sqlite3.Connection, mode: str) -> None:
        """``PRAGMA journal_mode=mode``, retried with the connection holding no lock between tries.

        Leaving a rollback journal for WAL takes an exclusive lock while the
        statement holds a shared one. When another connection holds the
        reserved lock (a writer, or another process opening the same fresh
        file), neither can go on while the other keeps its lock: SQLite then
        refuses the switch at once ("database is locked", its deadlock
        avoidance) or, in other interleavings, waits in its busy handler
        until the timeout (a test saw an open of a fresh file by four
        processes fail after 60 s). So the statement runs with no busy wait,
        and a refusal is retried here, after a short randomised sleep in
        which this connection holds no lock and the other side can finish,
        until the store's ``timeout``.
        """
        deadline = time.monotonic() + self._timeout
        delay = 0.001
        conn.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    conn.execute(f"PRAGMA journal_mode={mode}").fetchall()
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
                    if time.monotonic() + delay > deadline:
                        raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.05)
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")

    def _not_found(self, why: str) -> StoreNotFoundError:
        return StoreNotFoundError(
            f"{self.path} {why}; nothing was created "
            f"(open it without create=False or readonly=True to create a store)"
        )

    def _check_intact(self, conn: sqlite3.Connection) -> None:
        """Refuse a file that is not an SQLite database, or shorter than its header says.

        SQLite reads missing pages as zeros and may only notice when it meets
        one, perhaps in the middle of a write. Recent SQLite refuses a file
        with fewer pages than its header counts when it first reads it; the
        size comparison below also catches a partial last page (and older
        SQLite). Pages may legitimately live in a WAL or a rollback journal
        beside a short file: the size is compared only inside a read
        transaction that found the WAL empty (a WAL that the transaction reads
        from cannot be emptied until it ends) and with no journal beside.
        """
        path = self.path
        conn.execute("BEGIN")
        try:
            try:
                conn.execute("PRAGMA schema_version").fetchone()
            except sqlite3.DatabaseError as exc:
                if "not a database" in str(exc):
                    raise IncompatibleStoreError(f"{path} is not an SQLite database") from exc
                if "malformed" in str(exc):
                    raise IncompatibleStoreError(
                        f"{path} is truncated (fewer pages than its header counts) "
                        f"or corrupt: {exc}"
                    ) from exc
                raise
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            if os.path.exists(f"{path}-journal"):
                return
            try:
                wal_size = os.stat(f"{path}-wal").st_size
            except FileNotFoundError:
                wal_size = 0
            size = os.stat(path).st_size
            if wal_size == 0 and size < pages * page_size:
                raise IncompatibleStoreError(
                    f"{path} is truncated: {size} bytes, its header says {pages * page_size}"
                )
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _foreign(self, kind: str, name: str, problem: str) -> IncompatibleStoreError:
        return IncompatibleStoreError(
            f"{self.path}: the {kind} {name} is not keyshelf's ({problem}); "
            f"open the store with table='...' to give keyshelf's tables other names"
        )

    def _inspect(self, conn: sqlite3.Connection) -> _State:
        """What keyshelf's names hold in the file; raise if anything is not keyshelf's.

        Reads only. The data table, its meta table and its expiry index must
        have exactly the definitions keyshelf writes (compared token by token,
        after checking the columns, types, primary key and ``WITHOUT ROWID``
        one by one for a precise message); no other index and no trigger may
        be attached to them.
        """
        t, m, index = self._table, self._meta_table, f"{self._table}_expiry"
        objects = {
            name: (kind, table, sql)
            for name, kind, table, sql in conn.execute(
                "SELECT name, type, tbl_name, sql FROM sqlite_master "
                "WHERE name IN (?, ?, ?) OR tbl_name IN (?, ?)",
                (t, m, index, t, m),
            )
        }
        if not objects:
            return _State.ABSENT
        for name, (kind, table, _sql) in objects.items():
            if kind == "trigger" and not (
                _bounds_trigger(t, name, _sql) or _sqlite_feed.is_ours(t, name, _sql)
            ):
                raise IncompatibleStoreError(
                    f"{self.path}: trigger {name} on keyshelf's table {table} would run on "
                    f"every write; keyshelf refuses tables with triggers (drop the trigger, "
                    f"or open the store with table='...' to use other tables)"
                )
            if kind != "table" and name in (t, m):
                raise self._foreign(kind, name, f"keyshelf's {name} is a table")
        version = self._schema_version(conn, objects.get(m))
        if version is not None and version > SCHEMA_VERSION:
            raise IncompatibleStoreError(
                f"{self.path} holds keyshelf schema version {version}; "
                f"this keyshelf reads up to version {SCHEMA_VERSION}: upgrade keyshelf"
            )
        data = objects.get(t)
        if data is None:
            if version is not None:
                raise IncompatibleStoreError(
                    f"{self.path}: table {m} records keyshelf schema version {version} "
                    f"but the data table {t} is missing; the store is damaged"
                )
        else:
            self._check_data_table(conn, data[2])
        for name, (kind, table, sql) in objects.items():
            if kind != "index" or name in (t, m):
                continue
            if name == index and table == t and sql is not None:
                if _tokens(sql) != _tokens(_expiry_index_sql(t)):
                    raise self._foreign("index", name, "its definition differs from keyshelf's")
            elif not (name.startswith("sqlite_autoindex_") and table in (t, m)):
                raise self._foreign("index", name, f"an index keyshelf did not create on {table}")
        if data is None:
            return _State.ABSENT
        if version is None or index not in objects:
            return _State.PARTIAL
        return _State.READY

    def _schema_version(
        self, conn: sqlite3.Connection, meta: tuple[str, str, str | None] | None
    ) -> int | None:
        """The version the meta table records, None without a meta table."""
        if meta is None:
            return None
        m = self._meta_table
        if meta[2] is None or _tokens(meta[2]) != _tokens(_meta_table_sql(m)):
            raise IncompatibleStoreError(
                f"{self.path}: table {m} exists but is not keyshelf's; "
                f"open the store with table='...' to give keyshelf's tables other names"
            )
        found = conn.execute(f"SELECT value FROM {m} WHERE name='schema_version'").fetchone()
        text = None if found is None else found[0]
        if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,9}", text) or int(text) < 1:
            shown = "no schema_version" if text is None else f"schema_version {show(text)}"
            raise IncompatibleStoreError(
                f"{self.path}: table {m} holds {shown}, not a keyshelf schema version; "
                f"the store is damaged or not keyshelf's"
            )
        return int(text)

    def _check_data_table(self, conn: sqlite3.Connection, sql: str | None) -> None:
        t = self._table
        columns = conn.execute(f"PRAGMA table_xinfo({t})").fetchall()
        names = tuple(c[1] for c in columns)
        if names != _COLUMNS:
            raise self._foreign("table", t, f"its columns are {', '.join(names)}")
        for (_cid, name, kind, notnull, default, _pk, hidden), (want, want_notnull) in zip(
            columns, _COLUMN_SHAPES, strict=True
        ):
            if str(kind).upper() != want:
                raise self._foreign("table", t, f"column {name} is {kind or 'untyped'}, not {want}")
            if notnull != want_notnull or default is not None or hidden:
                raise self._foreign("table", t, f"column {name} is not declared as keyshelf's")
        primary = sorted((c[5], c[1]) for c in columns if c[5])
        if [name for _, name in primary] != ["ns", "key"]:
            raise self._foreign("table", t, "its primary key is not (ns, key)")
        try:
            conn.execute(f"SELECT rowid FROM {t} LIMIT 0")
        except sqlite3.OperationalError:
            pass  # no rowid: a WITHOUT ROWID table, as keyshelf creates it
        else:
            raise self._foreign("table", t, "it is not a WITHOUT ROWID table")
        if sql is None or _tokens(sql) != _tokens(_data_table_sql(t)):
            raise self._foreign(
                "table", t, "its definition differs from keyshelf's (constraints or collations)"
            )

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        t, m = self._table, self._meta_table
        with self._transaction(conn):
            # Another process may have created or changed it since we looked.
            state = self._inspect(conn)
            if state is _State.READY:
                return
            if state is _State.ABSENT:
                conn.execute(_data_table_sql(t))
            if self._schema_version(conn, self._meta_row(conn)) is None:
                conn.execute(_meta_table_sql(m))
                conn.execute(
                    f"INSERT INTO {m} (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            conn.execute(_expiry_index_sql(t).replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))

    def _meta_row(self, conn: sqlite3.Connection) -> tuple[str, str, str | None] | None:
        row = conn.execute(
            "SELECT type, tbl_name, sql FROM sqlite_master WHERE name = ?", (self._meta_table,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def _connection(self, *, check: bool = False) -> sqlite3.Connection:
        """This thread's connection; ``check``: run :meth:`_check_intact` before any setting.

        (Setting the synchronous mode or the cache size already reads the
        schema, which would report a truncated file as merely malformed.)
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreClosedError(f"The store {self.path} is closed")
        try:
            conn = sqlite3.connect(
                self._uri,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
                uri=True,
            )
        except sqlite3.Error as exc:
            if not self._create and not os.path.exists(self.path):
                raise self._not_found("does not exist") from exc
            raise self._error(exc, "open") from exc
        try:
            if check:
                self._check_intact(conn)
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
            # Reads of the database file through a memory map, not a read()
            # per page. Writes cannot use the map: every page a write
            # transaction touches goes through the page cache, so it holds up
            # to 64 MiB (SQLite's default is 2 MiB), enough for the interior
            # pages and a hot set of leaves of a multi-GB file.
            conn.execute(f"PRAGMA mmap_size={_MMAP_SIZE}")
            conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            # A bounded store's triggers (_sqlite_bounds) count a row that
            # INSERT OR REPLACE replaces only if its delete trigger fires:
            # every connection turns this on, whether it opened the store
            # bounded or not (another process may bound it later).
            conn.execute("PRAGMA recursive_triggers = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "open") from exc
        except BaseException:
            conn.close()
            raise
        with self._guard:
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    # -- plumbing -----------------------------------------------------------

    def _error(self, exc: sqlite3.Error, action: str) -> BackendError:
        message = str(exc)
        if self._readonly and "readonly" in message:
            return self._read_only()
        if isinstance(exc, sqlite3.DatabaseError) and (
            "malformed" in message or "not a database" in message
        ):
            return IncompatibleStoreError(f"{self.path} is corrupt or not a database: {message}")
        if "readonly" in message or "unable to open" in message:
            return BackendUnavailableError(f"Cannot write {self.path}: {message}")
        return BackendError(f"SQLite error on {self.path} during {action}: {message}")

    def _read_only(self) -> ReadOnlyStoreError:
        return ReadOnlyStoreError(
            f"Cannot write {self.path}: the store was opened with readonly=True; "
            f"nothing was changed"
        )

    def _run(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` with this thread's connection, retrying busy errors.

        On the event-loop thread of an async store (a no-wait connection, see
        :meth:`enter_nowait`) a busy error is not waited out: it raises
        :class:`WouldBlock` and the bridge runs the call in a worker thread.
        """
        delay = 0.005
        for attempt in range(_RETRIES):
            conn = self._connection()
            try:
                return work(conn)
            except sqlite3.OperationalError as exc:
                _abandon(conn)
                busy = "locked" in str(exc) or "busy" in str(exc)
                if busy and getattr(self._local, "nowait", False):
                    raise WouldBlock from exc
                if not busy or attempt == _RETRIES - 1:
                    raise self._error(exc, action) from exc
            except sqlite3.Error as exc:
                _abandon(conn)
                raise self._error(exc, action) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    def enter_nowait(self) -> None:
        """Make this thread's connection a no-wait one: busy errors raise :class:`WouldBlock`.

        Called by the async fast path on the event-loop thread before its first
        inline call there: that connection gets ``busy_timeout=0`` (SQLite
        returns SQLITE_BUSY at once instead of sleeping in its busy handler)
        and :meth:`_run` never sleeps between retries on it. Worker threads
        keep their waiting connections.
        """
        conn = self._connection()
        conn.execute("PRAGMA busy_timeout=0")
        # Checkpoints are I/O-bound (fsync): the worker threads run them.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._local.nowait = True

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        # Every write transaction starts here; SQLite itself would let a
        # read-only connection begin one that ends up writing nothing.
        if self._readonly:
            raise self._read_only()
        # IMMEDIATE takes the write lock up front: two read-modify-write
        # transactions can then never deadlock on a lock upgrade.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (SQLITE_BUSY: in rollback-journal modes it
            # needs readers gone) leaves the transaction open; end it, so the
            # caller's retry begins afresh and nothing half-done stays behind.
            _abandon(conn)
            raise

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
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                _abandon(conn)
            busy = isinstance(exc, sqlite3.OperationalError) and (
                "locked" in str(exc) or "busy" in str(exc)
            )
            if not busy:
                raise self._error(exc, action) from exc
            if getattr(self._local, "nowait", False):
                raise WouldBlock from exc
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
                if write is DELETE:
                    conn.execute(self._sql.delete_one, (ns, key)).fetchall()
                elif isinstance(write, Write):
                    if old is None:
                        created, version = now, 1
                    else:
                        created, version = old.created_at, old.version + 1
                    row = (ns, key, write.tag, write.payload, write.expires_at, write.meta)
                    conn.execute(self._sql.replace, (*row, created, now, version))
                return result

        return self._run("update", work)

    def update_many(self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]) -> R:
        """One ``BEGIN IMMEDIATE`` transaction: read every key, decide, write (or roll back)."""

        def work(conn: sqlite3.Connection) -> R:
            with self._transaction(conn), self._feed_group(conn):
                records: dict[str, Record | None] = dict.fromkeys(keys)
                # One query per 500 keys (SQLite's bound-parameter limit).
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    sql = self._sql.records_many(len(chunk))
                    for key, *fields in conn.execute(sql, (ns, now, *chunk)):
                        records[key] = Record(*fields)
                actions, result = decide(records)
                rows = []
                for key, action in actions.items():
                    if action is DELETE:
                        conn.execute(self._sql.delete_one, (ns, key)).fetchall()
                    elif isinstance(action, Write):
                        old = records[key]
                        if old is None:
                            created, version = now, 1
                        else:
                            created, version = old.created_at, old.version + 1
                        rows.append(
                            (ns, key, *action, created, now, version)  # Write: tag..meta
                        )
                if rows:
                    conn.executemany(self._sql.replace, rows)
                return result

        return self._run("update_many", work)

    def commit(
        self, ns: str, checks: dict[str, int | None], ops: list[Op], now: int
    ) -> CommitOutcome:
        """Checks and sets only (each key set once): one statement, atomic by itself.

        ``INSERT ... SELECT`` of the new rows, filtered by every check (the
        live version of each checked key ``IS`` the one given; NULL: absent),
        upserted with the rules of ``set``, ``RETURNING`` the new versions:
        SQLite evaluates the checks before it writes a row, and the statement
        is one transaction. Anything else (deletes, increments, expiries,
        several mutations of one key, sets that keep and sets that replace
        metadata together) takes :meth:`update_many`.

        The change feed: whether it is on is decided inside the write's own
        transaction (a ``BEGIN IMMEDIATE`` one, or, with the feed known off,
        the statement itself, which then writes only while the feed's table
        does not exist), so the commit's changes always share one revision.
        """
        keep = None
        seen: set[str] = set()
        for op in ops:
            if not isinstance(op, SetOp) or op.key in seen:
                return super().commit(ns, checks, ops, now)
            seen.add(op.key)
            kept = isinstance(op.meta, Keep)
            if keep is None:
                keep = kept
            elif keep != kept:
                return super().commit(ns, checks, ops, now)
        if not ops or len(ops) + len(checks) > 400:  # bound parameters stay under 999
            return super().commit(ns, checks, ops, now)
        sql = self._sql.checked_sets(len(ops), len(checks), bool(keep))
        params: list[Any] = [ns, now]
        for op in ops:  # SetOp only, from the loop above
            assert isinstance(op, SetOp)
            expires = None if op.ttl_ms is None else now + op.ttl_ms
            params += (op.key, op.value[0], op.value[1], expires, None if keep else op.meta)
        for key, version in checks.items():
            params += (key, version)

        def work(conn: sqlite3.Connection) -> list[Any]:
            off_at = self._feed_off_at()
            if off_at is not None and not self._readonly:
                # The feed was off at schema version ``off_at``: the statement
                # writes only if the feed is still off when it runs (its own
                # transaction, under the write lock), so it records nothing or
                # writes nothing. No BEGIN, no PRAGMA. Nothing written: if the
                # schema is still ``off_at`` its checks refused it; else the
                # feed may have been switched on, and the transaction decides.
                guarded = self._sql.checked_sets(len(ops), len(checks), bool(keep), guarded=True)
                rows: list[Any] = conn.execute(guarded, params).fetchall()
                if rows or self._schema_is(conn, off_at):
                    return rows
            # One revision for the commit (a marked transaction when the feed is
            # on), decided under the write lock: a process that switches the
            # feed on meanwhile commits before this transaction begins.
            with self._transaction(conn), self._feed_group(conn):
                return conn.execute(sql, params).fetchall()

        rows = self._run("commit", work)
        if not rows:
            return False, {}
        return True, {key: version for key, version in rows}

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

    def compare_and_swap(self, ns: str, key: str, expected: Value, new: Value, now: int) -> bool:
        # Fast path: one UPDATE when the stored value is byte-for-byte the
        # expected one (what a lock's release or a counter's CAS loop sees);
        # a miss runs the shared decision in one transaction, which decides by
        # typed equality (and finds the key missing, or the value different).
        params = (ns, key, now, expected[0], expected[1], new[0], new[1])
        try:
            changed = self._local.conn.execute(self._sql.compare_and_swap, params).rowcount
        except (AttributeError, sqlite3.Error) as exc:
            sql = self._sql.compare_and_swap
            changed = self._after_fast(
                exc, "compare_and_swap", lambda conn: conn.execute(sql, params).rowcount
            )
        if changed:
            return True
        return super().compare_and_swap(ns, key, expected, new, now)

    def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        """Every item in one transaction, upserted by multi-row statements in the items' order.

        One statement writes up to :data:`ROWS_MAX` rows (``_Statements.put_rows``):
        ``executemany`` of the one-row upsert ran its program once per row
        (reset, bind, cursors opened again), ~1.4 us a row more; 100 sessions
        in raw sqlite3 took 344 us that way and ~205 us this way. The rows are
        written one by one in the given order, so the change feed's and a
        bounded store's triggers fire as they did for ``executemany``.
        """
        flat: list[Any] = []
        for key, value in items:
            flat += (key, value[0], value[1])
        head = [ns, now, expires_at]
        sql = self._sql

        def work(conn: sqlite3.Connection) -> None:
            with self._transaction(conn):
                start = 0
                for n in _chunks(len(flat) // 3):
                    end = start + 3 * n
                    conn.execute(sql.put_rows(n), head + flat[start:end])
                    start = end

        self._run("mset", work)

    def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        unique = keys if len(keys) == 1 else list(dict.fromkeys(keys))
        if len(unique) == 1:
            key = unique[0]
            params = (ns, key, now)
            try:
                removed = self._delete_one(self._local.conn, params)
            except (AttributeError, sqlite3.Error) as exc:
                removed = self._after_fast(
                    exc, "delete", lambda conn: self._delete_one(conn, params)
                )
            return [key] if removed else []

        def work(conn: sqlite3.Connection) -> list[str]:
            removed: list[str] = []
            with self._transaction(conn):
                for start in range(0, len(unique), 500):
                    chunk = unique[start : start + 500]
                    cursor = conn.execute(self._sql.delete_many(len(chunk)), (ns, *chunk))
                    removed.extend(k for k, exp in cursor.fetchall() if exp is None or exp > now)
            return removed

        return self._run("delete", work)

    def _delete_one(self, conn: sqlite3.Connection, params: tuple[str, str, int]) -> bool:
        """Delete one key (params: ns, key, now); True if it was live.

        The live row is deleted by a statement that counts it (``rowcount``):
        ``RETURNING expires_at``, which told a live row from an expired one in
        one statement, cost ~2.7 us more per delete (raw sqlite3: 13.9 ->
        11.0 us). Only when no live row was there does a read look for an
        expired one, deleted by a third statement that removes it only if it
        is still expired: a missing key costs a read more (6.9 -> 8.7 us).
        Each statement is atomic: if another writer sets the key between
        them, the key was not live when this call removed nothing, and its
        new value stays.
        """
        sql = self._sql
        if conn.execute(sql.delete_live, params).rowcount:
            return True
        if conn.execute(sql.stored, params[:2]).fetchone() is not None:
            conn.execute(sql.delete_expired, params)
        return False

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
            params: tuple[Any, ...] = (now,)
        else:
            sql = f"DELETE FROM {self._table} WHERE expires_at <= ? AND ns = ?"
            params = (now, ns)

        def work(conn: sqlite3.Connection) -> int:
            # Decided under the write lock, as commit: a feed switched on by
            # another process meanwhile records these removals as "expire" too.
            with self._transaction(conn):
                if not self._feed_on(conn):
                    return conn.execute(sql, params).rowcount
                # The feed records these removals as "expire" (_sqlite_feed).
                f = _sqlite_feed.feed_table(self._table)
                conn.execute(f"UPDATE {f} SET expiring = 1")
                removed = conn.execute(sql, params).rowcount
                conn.execute(f"UPDATE {f} SET expiring = 0")
                return removed

        return self._run("delete_expired", work)

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

    # -- change feed (_sqlite_feed, docs/changes.md) ---------------------------------

    change_feed = True

    def _feed_on(self, conn: sqlite3.Connection) -> bool:
        """True if the file holds the feed; called inside a transaction of ``conn``.

        Inside a transaction the answer holds until it ends: a write that
        decides here (a commit's revision, a purge's "expire") cannot be
        overtaken by a process switching the feed on. Cached by ``PRAGMA
        schema_version``, which creating the feed's tables and triggers
        changes: the cache is taken only from one snapshot (the version and
        the feed read together, inside the transaction), so a version always
        maps to what its schema holds. Costs one PRAGMA per call (~3 us inside
        a transaction, where it starts no read of its own).
        """
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        seen = self._feed_seen
        if seen[0] == version:
            return seen[1]
        on = _sqlite_feed.settings(conn, self._table) is not None
        if conn.in_transaction:  # else two snapshots: the pair may not be one schema's
            self._feed_seen = (version, on)
        return on

    def _feed_off_at(self) -> int | None:
        """The schema version at which the feed was last seen off, None if not known off.

        A decision taken outside any transaction: only for a statement that
        checks, in its own transaction, that the schema is still this version
        (see :meth:`commit`).
        """
        version, on = self._feed_seen
        return None if on or version < 0 else version

    @staticmethod
    def _schema_is(conn: sqlite3.Connection, version: int) -> bool:
        """True if the file's schema is still ``version`` (it only grows)."""
        return bool(conn.execute("PRAGMA schema_version").fetchone()[0] == version)

    def _feed_run(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a watcher's read on the watchers' connection, under its lock.

        Not the thread's connection: close() closes those while calls may
        still run on them, and a watch must end cleanly when its store is
        closed. close() takes the same lock before it closes this connection,
        so a read either completes or raises StoreClosedError. The reads are
        short, so the watchers of one store share it.
        """
        with self._probe_lock:
            if self._closed:
                raise StoreClosedError(f"The store {self.path} is closed")
            conn = self._probe
            if conn is None:
                try:
                    conn = self._probe = sqlite3.connect(
                        self._uri,
                        timeout=self._timeout,
                        isolation_level=None,
                        check_same_thread=False,
                        uri=True,
                    )
                except sqlite3.Error as exc:
                    raise self._error(exc, action) from exc
            try:
                return work(conn)
            except sqlite3.Error as exc:
                _abandon(conn)
                raise self._error(exc, action) from exc

    @contextlib.contextmanager
    def _feed_group(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Inside a write transaction: every change recorded shares one revision."""
        if not self._feed_on(conn):
            yield
            return
        # The seq the commit's first change will get (the write lock is held);
        # the changes get it as their revision before the transaction commits.
        first = _sqlite_feed.group_start(conn, self._table)
        yield
        _sqlite_feed.group_end(conn, self._table, first)

    def enable_changes(self, history_count: int | None, history_ms: int | None) -> None:
        t = self._table

        def work(conn: sqlite3.Connection) -> None:
            if self._readonly:
                if _sqlite_feed.settings(conn, t) == (history_count, history_ms):
                    return  # already so: nothing to write
                raise self._read_only()
            with self._transaction(conn):
                _sqlite_feed.enable(conn, t, history_count, history_ms)

        self._run("enable_changes", work)

    def changes_enabled(self) -> bool:
        return self._feed_run(
            "changes_enabled", lambda conn: _sqlite_feed.settings(conn, self._table) is not None
        )

    def revision(self, now: int, ns: str | None = None) -> int:
        c = _sqlite_feed.changes_table(self._table)
        sql = f"SELECT {_sqlite_feed.REVISION} FROM {c} ORDER BY seq DESC LIMIT 1"

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN")  # one read: the feed's presence and its last row
            try:
                if not self._feed_on(conn):
                    return 0
                row = conn.execute(sql).fetchone()
            finally:
                conn.execute("COMMIT")
            return 0 if row is None else int(row[0])

        return self._feed_run("revision", work)

    def changes(self, ns: str | None, after: int, limit: int, now: int) -> list[Change]:
        f, c = _sqlite_feed.feed_table(self._table), _sqlite_feed.changes_table(self._table)
        revision = _sqlite_feed.REVISION
        columns = f"seq, {revision}, type, ns, key, vtype, value, version, expires_at, ptype, prev"
        where = "" if ns is None else " AND ns = ?"
        # A revision is never above its seq: the rowid range starts the scan.
        first = (
            f"SELECT {columns} FROM {c} WHERE seq > ?1 AND {revision} > ?1{where} "
            "ORDER BY seq LIMIT ?"
        )
        rest = f"SELECT {columns} FROM {c} WHERE seq > ? ORDER BY seq"
        args = [] if ns is None else [ns]

        def work(conn: sqlite3.Connection) -> list[Any]:
            # One read transaction: the rows and the pruning mark of one snapshot.
            conn.execute("BEGIN")
            try:
                if not self._feed_on(conn):
                    return []
                pruned = conn.execute(f"SELECT pruned FROM {f}").fetchone()[0]
                if after < pruned:
                    raise ChangesCompactedError(
                        f"Changes after revision {after} were pruned from the history of "
                        f"{self.path}; the oldest revision kept is {pruned + 1}",
                        oldest=pruned + 1,
                    )
                rows = conn.execute(first, (after, *args, limit)).fetchall()
                if len(rows) >= limit:  # never split a revision: take the rest of the last
                    last = rows[-1][1]
                    for row in conn.execute(rest, (rows[-1][0],)):
                        if row[1] != last:
                            break
                        if ns is None or row[3] == ns:
                            rows.append(row)
            finally:
                conn.execute("COMMIT")
            return rows

        return [
            Change(
                rev,
                kind,
                space,
                key,
                None if vtype is None else (vtype, value),
                version,
                expires,
                None if ptype is None else (ptype, prev),
            )
            for _, rev, kind, space, key, vtype, value, version, expires, ptype, prev in (
                self._feed_run("changes", work)
            )
        ]

    def feed_probe(self) -> int:
        """``PRAGMA data_version`` of a connection that never writes: grows on every commit.

        The doorbell of watchers (:meth:`wait_changes`, and the async bridge's
        probe loop): a number that differs from one call to the next once any
        other connection, of any process, has committed.
        """
        return self._feed_run(
            "watch", lambda conn: int(conn.execute("PRAGMA data_version").fetchone()[0])
        )

    def wait_changes(self, after: int, timeout: float, ns: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        first = self.feed_probe()
        while not self._closed and time.monotonic() < deadline:
            time.sleep(min(FEED_PROBE_INTERVAL, max(deadline - time.monotonic(), 0)))
            if self._closed or self.feed_probe() != first:
                return

    def close(self) -> None:
        with self._probe_lock:
            self._closed = True  # before the lock is released: no watcher read starts again
            probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(sqlite3.Error):
                probe.close()
        with self._guard:
            self._closed = True
            connections, self._connections = self._connections, []
            held, self._held = self._held, None
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if held is not None:
            _inuse.release(held)
        self._local = threading.local()


def _abandon(conn: sqlite3.Connection) -> None:
    """Roll back what a failed call left open on ``conn`` (nothing, usually).

    Every call is one statement in autocommit mode or one whole transaction,
    so a transaction still open after an error is a remnant: a COMMIT that
    failed, or a statement SQLite could not finish. Rolling it back leaves
    the connection as the next call expects it and the database unchanged.
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _bounds_trigger(t: str, name: str, sql: str | None) -> bool:
    """True for exactly the triggers of a bounded store (``_sqlite_bounds``)."""
    from ._sqlite_bounds import is_ours  # that module builds on this one

    return is_ours(t, name, sql)


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


#: The most rows one statement of ``put_many`` writes (3 bound parameters a
#: row: 771 in all, under the 999 of the oldest SQLite builds).
ROWS_MAX = 256
#: Below ROWS_MAX, statements write a multiple of ROWS_STEP rows, then the rest.
ROWS_STEP = 16


def _batch_update(live: str) -> str:
    """A batch upsert's conflict clause: a live key keeps its metadata and
    ``created_at`` and gets ``version + 1``; ``live`` is the row's liveness
    test with the statement's ``now`` parameter."""
    return f"""
            ON CONFLICT (ns, key) DO UPDATE SET
                type = excluded.type,
                value = excluded.value,
                expires_at = excluded.expires_at,
                meta = CASE WHEN {live} THEN meta ELSE NULL END,
                created_at = CASE WHEN {live} THEN created_at ELSE excluded.created_at END,
                updated_at = excluded.updated_at,
                version = CASE WHEN {live} THEN version + 1 ELSE 1 END"""


@functools.lru_cache(maxsize=1024)
def _chunks(n: int) -> tuple[int, ...]:
    """Sizes of the statements that write ``n`` rows: ROWS_MAX, a multiple of ROWS_STEP, the rest.

    Every batch runs from 31 statement texts at most (ROWS_MAX, the 15
    multiples of ROWS_STEP below it, 1 to 15), so the connection's statement
    cache (256) keeps them compiled; an exact size per batch would compile a
    new statement (~0.2-2 ms) for every size seen. A batch under ROWS_MAX
    takes at most two statements (each costs ~2 us besides its rows).
    """
    sizes = [ROWS_MAX] * (n // ROWS_MAX)
    rest = n % ROWS_MAX
    if rest >= ROWS_STEP:
        sizes.append(rest - rest % ROWS_STEP)
    if rest % ROWS_STEP:
        sizes.append(rest % ROWS_STEP)
    return tuple(sizes)


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
        # (put_many runs put_rows, its multi-row form; raw-SQL benchmarks use this one.)
        live6 = _LIVE.format(now="?6")
        live2 = _LIVE.format(now="?2")
        self.put_many = f"""
            INSERT INTO {t} {columns}
            VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?6, 1){_batch_update(live6)}"""
        self._put_rows_update = _batch_update(live2)
        # An upsert, not INSERT OR REPLACE: a replaced row is an UPDATE, so
        # triggers (the change feed's, a bounded store's) see one change.
        self.replace = f"""
            INSERT INTO {t} {columns} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (ns, key) DO UPDATE SET
                type = excluded.type, value = excluded.value,
                expires_at = excluded.expires_at, meta = excluded.meta,
                created_at = excluded.created_at, updated_at = excluded.updated_at,
                version = excluded.version"""
        # ?1 ns ?2 key ?3 now ?4 expected type ?5 expected value ?6 new type
        # ?7 new value. Swaps only when the stored type and value are the very
        # ones expected (equal bytes, or equal numbers of the same type tag:
        # typed-equal for certain); anything else takes the slow path, where
        # the shared decision applies typed equality in full.
        live3 = _LIVE.format(now="?3")
        self.compare_and_swap = f"""
            UPDATE {t} SET type = ?6, value = ?7, updated_at = ?3, version = version + 1
            WHERE ns = ?1 AND key = ?2 AND {live3} AND type = ?4 AND value = ?5"""
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
        # ?1 ns ?2 key ?3 now: delete's single key (SQLiteBackend._delete_one).
        self.delete_live = f"DELETE FROM {t} WHERE ns = ?1 AND key = ?2 AND {live}"
        self.stored = f"SELECT 1 FROM {t} WHERE ns = ?1 AND key = ?2"
        self.delete_expired = f"DELETE FROM {t} WHERE ns = ?1 AND key = ?2 AND expires_at <= ?3"
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
        self._by_size: dict[tuple[Any, ...], str] = {}
        self._put_rows: dict[int, str] = {}  # by rows (mset's hot path: an int key)

    def get_many(self, n: int) -> str:
        sql = self._by_size.get(("get_many", n))
        if sql is None:
            sql = self._by_size[("get_many", n)] = (
                f"SELECT key, type, value FROM {self._t} WHERE ns = ?1 AND "
                f"key IN ({', '.join(f'?{i + 3}' for i in range(n))}) AND {_LIVE.format(now='?2')}"
            )
        return sql

    def put_rows(self, n: int) -> str:
        """``put_many`` of ``n`` rows in one upsert, the rows written in their order.

        ?1 ns, ?2 now, ?3 expires_at (one for the batch), then key, type and
        value per row. Each row is ``put_many``'s one-row upsert: a live key
        keeps its user metadata and ``created_at`` and gets ``version + 1``.
        A plain ``VALUES`` list (not ``SELECT ... FROM (VALUES ...)``): one
        row is then SQLite's direct insert, ~1 us less.
        """
        sql = self._put_rows.get(n)
        if sql is None:
            rows = ", ".join(
                f"(?1, ?{4 + 3 * i}, ?{5 + 3 * i}, ?{6 + 3 * i}, ?3, NULL, ?2, ?2, 1)"
                for i in range(n)
            )
            sql = self._put_rows[n] = (
                f"INSERT INTO {self._t} "
                "(ns, key, type, value, expires_at, meta, created_at, updated_at, version) "
                f"VALUES {rows}{self._put_rows_update}"
            )
        return sql

    def checked_sets(self, sets: int, checks: int, keep_meta: bool, guarded: bool = False) -> str:
        """``commit`` of ``sets`` sets under ``checks`` checks in one upsert (see there).

        ?1 ns, ?2 now, then 5 per set (key, type, value, expires_at, meta),
        then 2 per check (key, version or NULL); ``guarded``: the statement
        writes only while the file has no change feed.
        """
        sql = self._by_size.get(("checked_sets", sets, checks, keep_meta, guarded))
        if sql is None:
            t = self._t
            rows = ", ".join(
                "(" + ", ".join(f"?{3 + 5 * i + j}" for j in range(5)) + ")" for i in range(sets)
            )
            first = 3 + 5 * sets
            tests = [
                f"(SELECT version FROM {t} WHERE ns = ?1 AND key = ?{first + 2 * i} "
                f"AND {_LIVE.format(now='?2')}) IS ?{first + 2 * i + 1}"
                for i in range(checks)
            ]
            if guarded:  # only while the feed is off (its table is created with its triggers)
                feed = _sqlite_feed.feed_table(t)
                tests.append(
                    f"NOT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' "
                    f"AND name = '{feed}')"
                )
            old_live = _LIVE.format(now="?2")
            meta = f"CASE WHEN {old_live} THEN meta ELSE NULL END" if keep_meta else "excluded.meta"
            sql = self._by_size[("checked_sets", sets, checks, keep_meta, guarded)] = f"""
                INSERT INTO {t}
                    (ns, key, type, value, expires_at, meta, created_at, updated_at, version)
                SELECT ?1, v.column1, v.column2, v.column3, v.column4, v.column5, ?2, ?2, 1
                FROM (VALUES {rows}) AS v
                WHERE {" AND ".join(tests) or "true"}
                ON CONFLICT (ns, key) DO UPDATE SET
                    type = excluded.type,
                    value = excluded.value,
                    expires_at = excluded.expires_at,
                    meta = {meta},
                    created_at = CASE WHEN {old_live} THEN created_at ELSE excluded.created_at END,
                    updated_at = excluded.updated_at,
                    version = CASE WHEN {old_live} THEN version + 1 ELSE 1 END
                RETURNING key, version"""
        return sql

    def records_many(self, n: int) -> str:
        """``key`` and the record columns of the live keys among ``n`` (update_many)."""
        sql = self._by_size.get(("records_many", n))
        if sql is None:
            sql = self._by_size[("records_many", n)] = (
                "SELECT key, type, value, expires_at, meta, created_at, updated_at, version "
                f"FROM {self._t} WHERE ns = ?1 AND "
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


def _bounded_or_plain(path: str, limits: Limits | None, settings: dict[str, Any]) -> SQLiteBackend:
    """The backend of a store: bounded if ``limits`` are given or the file holds some."""
    from ._sqlite_bounds import BoundedSQLiteBackend, has_bounds

    if limits is None:
        plain = SQLiteBackend(path, **settings)
        try:
            bounded = plain._run("open", lambda conn: has_bounds(conn, plain._table))
        except BaseException:
            plain.close()
            raise
        if not bounded:
            return plain
        plain.close()
        settings = {**settings, "journal_mode": None}  # already set by the first open
    return BoundedSQLiteBackend(path, limits=limits, **settings)


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``sqlite:///relative.db``, ``sqlite:////abs.db`` and bare paths.

    Options: ``table`` (default ``keyshelf``), ``durable``, ``timeout``,
    ``journal_mode``, ``create`` (default true; false: the file must exist and
    hold a keyshelf store, else StoreNotFoundError with nothing created) and
    ``readonly`` (default false; true: ``mode=ro``, every write raises
    ReadOnlyStoreError, implies ``create=false``).
    """
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
    create_store = as_bool("create", options.pop("create", True))
    readonly = as_bool("readonly", options.pop("readonly", False))
    limits = take_limits(options)
    refuse_unknown("sqlite", options)
    settings: dict[str, Any] = {
        "table": table,
        "durable": durable,
        "timeout": timeout,
        "journal_mode": journal_mode,
        "create": create_store,
        "readonly": readonly,
    }
    backend = _bounded_or_plain(path, limits, settings)
    if not asynchronous:
        return backend
    # Short statements run inline on the event loop's thread with a no-wait
    # connection; busy ones, scans and bulk work run in worker threads, each
    # with its own connection (_sqlite_fast.py says which go where).
    from ._sqlite_fast import fast_path

    return FeedBridge(backend, threads=4, inline=fast_path(backend))
