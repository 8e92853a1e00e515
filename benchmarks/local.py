"""Contestants for the in-process benchmarks: keyshelf memory and SQLite, and their anchors.

Memory: keyshelf ``memory://`` against cachetools ``TTLCache`` (used bare, as
its documentation shows: no lock) and a plain dict behind a lock storing
``(value, expiry)`` pairs.

SQLite: keyshelf's SQLite backend against

* raw stdlib ``sqlite3`` on keyshelf's own table, issuing the very statements
  keyshelf issues (taken from the backend), one autocommit connection in WAL
  mode with ``synchronous=NORMAL``, values encoded with orjson: the reachable
  ceiling, no abstraction at all;
* diskcache ``Cache`` (defaults: WAL, ``synchronous=NORMAL``, pickled values);
* sqlitedict ``SqliteDict`` with ``autocommit=True`` in WAL mode, as it is
  usually opened (its writes return before they are committed);
* *bare* stdlib ``sqlite3`` as a user following the module's documentation
  writes it (:class:`BareSQLite`): a ``(key, value, expiry)`` table, an
  ``INSERT ... ON CONFLICT DO UPDATE`` per set, values as orjson bytes. Twice:
  with the defaults ``sqlite3.connect()`` gives (rollback journal,
  ``synchronous=FULL``, a ``with con:`` commit per write), and in WAL mode with
  ``synchronous=NORMAL`` on an autocommit connection, the settings keyshelf
  uses, so that the difference between the two is visible on its own.

Each contestant has the same operations (:data:`benchmarks.workload.OPS`)
over the same keys, a ``load`` that fills it with the listing keys, and a
``bulk`` load used by the bulk benchmark.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

import keyshelf
from keyshelf.backends.sqlite import SQLiteBackend, _chunks

from .timing import Op
from .workload import PATTERN, PREFIX, SESSION, TTL, keys_for

#: "set" writes the very session every key already holds. SQLite notices when
#: an updated row's bytes are unchanged and leaves the page clean, so the
#: commit of a (key, value, expiry) table writes nothing at all, while a
#: keyshelf row always changes (``updated_at`` and ``version``). This
#: operation writes a session the key does not hold (``login_at`` differs
#: from every stored one, for fewer than 100,000 calls per operation), so
#: every side commits a real change: the comparison of two writes.
NEW_VALUE = "set (new value)"
_NEW_VALUES = [{**SESSION, "login_at": 1_700_000_001 + n} for n in range(1000)]


def new_value(i: int) -> dict[str, object]:
    """A session that differs from the one stored under every key of the workload."""
    return _NEW_VALUES[i % 1000]


# Listing is not a single-key operation: far fewer calls per round.
LIST_CALLS_INDEXED = 40
LIST_CALLS_SCAN = 8


def file_bytes(path: Path) -> int:
    """Bytes on disk of an SQLite file with its WAL and shm (or a directory)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    total = 0
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(str(path) + suffix)
        if candidate.exists():
            total += candidate.stat().st_size
    return total


def checkpoint(path: Path) -> None:
    """Fold the WAL into the database file, so that its size is the data's."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class Contestant:
    """One side of a comparison."""

    name = ""
    keyshelf = False

    def __init__(self, workdir: Path, listing_keys: int) -> None:
        self.workdir = workdir
        self.k = keys_for(listing_keys)

    def load(self) -> None:
        """Store every listing key (a session each), 100 ints and the counter."""
        raise NotImplementedError

    def ops(self) -> dict[str, Op]:
        raise NotImplementedError

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------
# keyshelf (any URL)
# ---------------------------------------------------------------------------


class KeyshelfStore(Contestant):
    keyshelf = True

    def __init__(self, workdir: Path, listing_keys: int, url: str, name: str) -> None:
        super().__init__(workdir, listing_keys)
        self.name = name
        self.kv = keyshelf.open(url)

    def load(self) -> None:
        kv, k = self.kv, self.k
        for start in range(0, k.n, 10_000):
            kv.mset(dict.fromkeys(k.users[start : start + 10_000], SESSION))
        kv.mset(dict.fromkeys(k.ints, 7))
        kv.set("counter", 0)

    def ops(self) -> dict[str, Op]:
        kv, k = self.kv, self.k
        return {
            "set": Op(lambda i: kv.set(k.hit(i), SESSION)),
            NEW_VALUE: Op(lambda i: kv.set(k.hit(i), new_value(i))),
            "get hit": Op(lambda i: kv.get(k.hit(i))),
            "get miss": Op(lambda i: kv.get(k.miss(i))),
            "set with TTL": Op(lambda i: kv.set(k.ttl_key(i), SESSION, ttl=TTL)),
            "set (int)": Op(lambda i: kv.set(k.int_key(i), i)),
            "get hit (int)": Op(lambda i: kv.get(k.int_key(i))),
            "increment": Op(lambda i: kv.increment("counter")),
            "delete": Op(
                lambda i: kv.delete(k.delete(i)), prepare=lambda i: kv.set(k.delete(i), SESSION)
            ),
            "mset 100": Op(lambda i: kv.mset(k.mapping(i))),
            "mget 100": Op(lambda i: kv.mget(k.batch(i))),
            "list user:1*": Op(lambda i: kv.keys(PATTERN), calls=LIST_CALLS_INDEXED, warmup=2),
        }

    def close(self) -> None:
        self.kv.close()


# ---------------------------------------------------------------------------
# memory anchors
# ---------------------------------------------------------------------------


class CachetoolsTTL(Contestant):
    name = "cachetools TTLCache"

    def __init__(self, workdir: Path, listing_keys: int) -> None:
        super().__init__(workdir, listing_keys)
        from cachetools import TTLCache

        self.cache: Any = TTLCache(maxsize=10_000_000, ttl=TTL)

    def load(self) -> None:
        self.cache.update(dict.fromkeys(self.k.users, SESSION))
        self.cache.update(dict.fromkeys(self.k.ints, 7))
        self.cache["counter"] = 0

    def ops(self) -> dict[str, Op]:
        c, k = self.cache, self.k
        get = c.get

        def incr(i: int) -> int:
            value = c.get("counter", 0) + 1
            c["counter"] = value
            return int(value)

        def listing(i: int) -> list[str]:
            return sorted(key for key in c if key.startswith(PREFIX))

        def mget(i: int) -> dict[str, Any]:
            return {key: c[key] for key in k.batch(i)}

        return {
            "set": Op(lambda i: c.__setitem__(k.hit(i), SESSION)),
            NEW_VALUE: Op(lambda i: c.__setitem__(k.hit(i), new_value(i))),
            "get hit": Op(lambda i: get(k.hit(i))),
            "get miss": Op(lambda i: get(k.miss(i))),
            # Every entry of a TTLCache has the cache's TTL.
            "set with TTL": Op(lambda i: c.__setitem__(k.ttl_key(i), SESSION)),
            "set (int)": Op(lambda i: c.__setitem__(k.int_key(i), i)),
            "get hit (int)": Op(lambda i: get(k.int_key(i))),
            "increment": Op(incr),
            "delete": Op(
                lambda i: c.pop(k.delete(i), None),
                prepare=lambda i: c.__setitem__(k.delete(i), SESSION),
            ),
            "mset 100": Op(lambda i: c.update(k.mapping(i))),
            "mget 100": Op(mget),
            "list user:1*": Op(listing, calls=LIST_CALLS_INDEXED, warmup=2),
        }


class LockedDict(Contestant):
    name = "dict + lock"

    def __init__(self, workdir: Path, listing_keys: int) -> None:
        super().__init__(workdir, listing_keys)
        self.data: dict[str, tuple[Any, float | None]] = {}
        self.lock = threading.Lock()

    def load(self) -> None:
        for key in self.k.users:
            self.data[key] = (SESSION, None)
        for key in self.k.ints:
            self.data[key] = (7, None)
        self.data["counter"] = (0, None)

    def ops(self) -> dict[str, Op]:
        d, lock, k = self.data, self.lock, self.k
        now = time.time

        def put(key: str, value: Any, ttl: float | None = None) -> None:
            with lock:
                d[key] = (value, None if ttl is None else now() + ttl)

        def get(key: str) -> Any:
            with lock:
                item = d.get(key)
            if item is None:
                return None
            expires = item[1]
            if expires is not None and expires <= now():
                return None
            return item[0]

        def incr(i: int) -> int:
            with lock:
                value, expires = d.get("counter", (0, None))
                value += 1
                d["counter"] = (value, expires)
            return int(value)

        def delete(i: int) -> bool:
            with lock:
                return d.pop(k.delete(i), None) is not None

        def mset(i: int) -> None:
            with lock:
                for key, value in k.mapping(i).items():
                    d[key] = (value, None)

        def mget(i: int) -> dict[str, Any]:
            with lock:
                return {key: d[key][0] for key in k.batch(i)}

        def listing(i: int) -> list[str]:
            t = now()
            with lock:
                items = list(d.items())
            return sorted(
                key
                for key, (_, exp) in items
                if key.startswith(PREFIX) and (exp is None or exp > t)
            )

        return {
            "set": Op(lambda i: put(k.hit(i), SESSION)),
            NEW_VALUE: Op(lambda i: put(k.hit(i), new_value(i))),
            "get hit": Op(lambda i: get(k.hit(i))),
            "get miss": Op(lambda i: get(k.miss(i))),
            "set with TTL": Op(lambda i: put(k.ttl_key(i), SESSION, TTL)),
            "set (int)": Op(lambda i: put(k.int_key(i), i)),
            "get hit (int)": Op(lambda i: get(k.int_key(i))),
            "increment": Op(incr),
            "delete": Op(delete, prepare=lambda i: put(k.delete(i), SESSION)),
            "mset 100": Op(mset),
            "mget 100": Op(mget),
            "list user:1*": Op(listing, calls=LIST_CALLS_INDEXED, warmup=2),
        }


#: A value of about 1 KB of JSON (a user profile with a few nested records):
#: keyshelf's cost of a write grows with the value (it is checked and encoded,
#: a copy is stored), cachetools' does not (it stores a reference).
PROFILE = {
    "user_id": 48213,
    "name": "Alice Example",
    "email": "alice@example.com",
    "roles": ["admin", "editor", "viewer"],
    "settings": {"theme": "dark", "language": "en-GB", "timezone": "Europe/London"},
    "addresses": [
        {"kind": kind, "street": "1 Long Road", "city": "Cambridge", "postcode": "CB1 1AA"}
        for kind in ("home", "work", "billing")
    ],
    "recent": [{"page": f"/items/{n}", "at": 1700000000 + n, "ok": True} for n in range(8)],
    "csrf": "9f8e7d6c5b4a3f2e1d0c",
    "login_at": 1700000000,
}

#: history= of the feed-on variant: the change feed keeps this many changes.
VARIANT_HISTORY = 10_000


class MemoryVariants(Contestant):
    """keyshelf ``memory://`` under the conditions that move the issue's figures.

    Each operation is named after what differs from the main table: a larger
    value (``1 KB value``), the change feed switched on
    (``history=10000``), the read-through cache tier (``cache='memory'``).
    :class:`CachetoolsVariants` runs the same keys and values on a plain
    ``TTLCache``, so each ratio shows what that one condition costs.
    """

    name = "keyshelf memory"
    keyshelf = True

    def __init__(self, workdir: Path, listing_keys: int, batch_calls: int) -> None:
        super().__init__(workdir, listing_keys)
        self.batch_calls = batch_calls
        self.stores = {
            "default": keyshelf.open("memory://"),
            "feed": keyshelf.open("memory://", history=VARIANT_HISTORY),
            "cache": keyshelf.open("memory://", cache="memory"),
        }

    def load(self) -> None:
        for kv in self.stores.values():
            for start in range(0, self.k.n, 10_000):
                kv.mset(dict.fromkeys(self.k.users[start : start + 10_000], SESSION))

    def ops(self) -> dict[str, Op]:
        k, plain = self.k, self.stores["default"]
        feed, cached = self.stores["feed"], self.stores["cache"]
        profiles = [dict.fromkeys(batch, PROFILE) for batch in k.batches]
        return {
            "set, 1 KB value": Op(lambda i: plain.set(k.hit(i), PROFILE)),
            "mset 100, 1 KB values": Op(
                lambda i: plain.mset(profiles[i % len(profiles)]), calls=self.batch_calls
            ),
            "set, history=10000": Op(lambda i: feed.set(k.hit(i), SESSION)),
            "set with TTL, history=10000": Op(lambda i: feed.set(k.ttl_key(i), SESSION, ttl=TTL)),
            "mset 100, history=10000": Op(
                lambda i: feed.mset(k.mapping(i)), calls=self.batch_calls
            ),
            "set, cache='memory'": Op(lambda i: cached.set(k.hit(i), SESSION)),
        }

    def close(self) -> None:
        for kv in self.stores.values():
            kv.close()


class CachetoolsVariants(CachetoolsTTL):
    """The anchor of :class:`MemoryVariants`: the same keys and values in a ``TTLCache``."""

    def __init__(self, workdir: Path, listing_keys: int, batch_calls: int) -> None:
        super().__init__(workdir, listing_keys)
        self.batch_calls = batch_calls

    def ops(self) -> dict[str, Op]:
        c, k = self.cache, self.k
        profiles = [dict.fromkeys(batch, PROFILE) for batch in k.batches]
        plain_set = Op(lambda i: c.__setitem__(k.hit(i), SESSION))
        mset = Op(lambda i: c.update(k.mapping(i)), calls=self.batch_calls)
        return {
            "set, 1 KB value": Op(lambda i: c.__setitem__(k.hit(i), PROFILE)),
            "mset 100, 1 KB values": Op(
                lambda i: c.update(profiles[i % len(profiles)]), calls=self.batch_calls
            ),
            "set, history=10000": plain_set,
            "set with TTL, history=10000": Op(lambda i: c.__setitem__(k.ttl_key(i), SESSION)),
            "mset 100, history=10000": mset,
            "set, cache='memory'": plain_set,
        }


# ---------------------------------------------------------------------------
# SQLite anchors
# ---------------------------------------------------------------------------


def _encode(value: Any) -> tuple[str, Any]:
    """What a hand-written store would do: ints native, containers as orjson."""
    if type(value) is int:
        return "i", value
    return "j", orjson.dumps(value)


def _decode(tag: str, payload: Any) -> Any:
    return payload if tag == "i" else orjson.loads(payload)


class RawSQLite(Contestant):
    """keyshelf's table and statements through stdlib sqlite3, nothing else."""

    name = "raw sqlite3"
    NS = "default"

    def __init__(self, workdir: Path, listing_keys: int, path: Path | None = None) -> None:
        super().__init__(workdir, listing_keys)
        self.path = path or workdir / "raw.db"
        # Create the schema exactly as keyshelf does, then never use keyshelf again.
        backend = SQLiteBackend(self.path)
        self.sql = backend._sql
        self.table = backend._table
        backend.close()
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA synchronous=NORMAL")

    @staticmethod
    def now() -> int:
        return math.floor(time.time() * 1000)

    def put_rows(self, items: Any, expires: int | None = None) -> None:
        """keyshelf's mset statements: multi-row upserts of the sizes it uses."""
        flat: list[Any] = []
        for key, value in items:
            flat += (key, *_encode(value))
        head = [self.NS, self.now(), expires]
        conn, sql = self.conn, self.sql
        conn.execute("BEGIN IMMEDIATE")
        start = 0
        for n in _chunks(len(flat) // 3):
            conn.execute(sql.put_rows(n), head + flat[start : start + 3 * n])
            start += 3 * n
        conn.execute("COMMIT")

    def load(self) -> None:
        k = self.k
        for start in range(0, k.n, 10_000):
            self.put_rows((key, SESSION) for key in k.users[start : start + 10_000])
        self.put_rows((key, 7) for key in k.ints)
        self.put_rows([("counter", 0)])

    def ops(self) -> dict[str, Op]:
        conn, sql, k, ns, now = self.conn, self.sql, self.k, self.NS, self.now
        execute = conn.execute

        put_sql = sql.put_by_flags[False, True, False]

        def put(key: str, value: Any, ttl: float | None = None) -> bool:
            t = now()
            expires = None if ttl is None else math.ceil(t + ttl * 1000)
            tag, payload = _encode(value)
            # keep_ttl false, keep_meta true (a set without metadata=), nx false
            params = (ns, key, tag, payload, expires, None, t)
            return execute(put_sql, params).rowcount > 0

        def get(key: str) -> Any:
            row = execute(sql.get, (ns, key, now())).fetchone()
            return None if row is None else _decode(row[0], row[1])

        def incr(i: int) -> Any:
            return execute(sql.increment, (ns, "counter", 1, now())).fetchone()[0]

        def delete(i: int) -> bool:
            # keyshelf's statements: the live row, else an expired one.
            params = (ns, k.delete(i), now())
            if execute(sql.delete_live, params).rowcount:
                return True
            if execute(sql.stored, params[:2]).fetchone() is not None:
                execute(sql.delete_expired, params)
            return False

        many = sql.get_many(100)

        def mget(i: int) -> dict[str, Any]:
            keys = k.batch(i)
            found = {key: (tag, p) for key, tag, p in execute(many, (ns, now(), *keys))}
            return {key: _decode(*found[key]) for key in keys}

        listing_sql = (
            f"SELECT key FROM {self.table} WHERE ns = ? AND key >= ? AND key < ? "
            "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key"
        )
        upper = PREFIX[:-1] + chr(ord(PREFIX[-1]) + 1)

        def listing(i: int) -> list[str]:
            return [key for (key,) in execute(listing_sql, (ns, PREFIX, upper, now()))]

        return {
            "set": Op(lambda i: put(k.hit(i), SESSION)),
            NEW_VALUE: Op(lambda i: put(k.hit(i), new_value(i))),
            "get hit": Op(lambda i: get(k.hit(i))),
            "get miss": Op(lambda i: get(k.miss(i))),
            "set with TTL": Op(lambda i: put(k.ttl_key(i), SESSION, TTL)),
            "set (int)": Op(lambda i: put(k.int_key(i), i)),
            "get hit (int)": Op(lambda i: get(k.int_key(i))),
            "increment": Op(incr),
            "delete": Op(delete, prepare=lambda i: put(k.delete(i), SESSION)),
            "mset 100": Op(lambda i: self.put_rows(k.mapping(i).items())),
            "mget 100": Op(mget),
            "list user:1*": Op(listing, calls=LIST_CALLS_INDEXED, warmup=2),
        }

    def close(self) -> None:
        self.conn.close()


class BareSQLite(Contestant):
    """A hand-written store on stdlib ``sqlite3``: the table and statements a user writes.

    ``CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expiry REAL)``
    (a rowid table with its automatic key index, the usual shape), expiry as a
    ``time.time()`` instant, values as orjson bytes (the JSON library keyshelf
    itself uses, so that the comparison is about the storage, not about
    ``json.dumps``, which costs a few microseconds more per session). No
    namespace, no type (an int comes back as an int only because JSON says
    so; a tuple would come back a list), no metadata, no versions, no index
    on the expiry (a purge would scan the table).

    ``wal=False``: ``sqlite3.connect(path)`` and nothing else, as the
    module's documentation shows it: the rollback journal, ``synchronous=FULL``
    and a ``with con:`` block (one commit) per write. ``wal=True``: the same
    table in WAL mode with ``synchronous=NORMAL`` on an autocommit connection
    (``isolation_level=None``), keyshelf's own journal settings.
    """

    def __init__(
        self, workdir: Path, listing_keys: int, *, wal: bool, write_calls: int | None = None
    ) -> None:
        super().__init__(workdir, listing_keys)
        self.wal = wal
        # Timed calls per round of each write (None: the runner's): a commit
        # with synchronous=FULL waits for the disk, ~3 ms here.
        self.write_calls = write_calls
        self.name = "bare sqlite3 WAL" if wal else "bare sqlite3 defaults"
        self.path = workdir / ("bare-wal.db" if wal else "bare-defaults.db")
        if wal:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        else:
            self.conn = sqlite3.connect(self.path, check_same_thread=False)
        with self._writing():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS kv "
                "(key TEXT PRIMARY KEY, value BLOB NOT NULL, expiry REAL)"
            )

    UPSERT = (
        "INSERT INTO kv (key, value, expiry) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expiry = excluded.expiry"
    )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One committed write transaction, the way each journal setting is used."""
        if self.wal:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        else:
            with self.conn:  # commits, or rolls back on an exception
                yield

    def put_rows(self, items: Any, expiry: float | None = None) -> None:
        rows = [(key, orjson.dumps(value), expiry) for key, value in items]
        with self._writing():
            self.conn.executemany(self.UPSERT, rows)

    def load(self) -> None:
        k = self.k
        for start in range(0, k.n, 10_000):
            self.put_rows((key, SESSION) for key in k.users[start : start + 10_000])
        self.put_rows((key, 7) for key in k.ints)
        self.put_rows([("counter", 0)])

    def ops(self) -> dict[str, Op]:
        conn, k, wal, now = self.conn, self.k, self.wal, time.time
        execute, upsert = conn.execute, self.UPSERT
        dumps, loads = orjson.dumps, orjson.loads

        if wal:

            def put(key: str, value: Any, ttl: float | None = None) -> None:
                expiry = None if ttl is None else now() + ttl
                execute(upsert, (key, dumps(value), expiry))  # autocommit: one commit

        else:

            def put(key: str, value: Any, ttl: float | None = None) -> None:
                expiry = None if ttl is None else now() + ttl
                with conn:
                    execute(upsert, (key, dumps(value), expiry))

        def get(key: str) -> Any:
            row = execute("SELECT value, expiry FROM kv WHERE key = ?", (key,)).fetchone()
            if row is None or (row[1] is not None and row[1] <= now()):
                return None
            return loads(row[0])

        def incr(i: int) -> int:
            # Read, add, write back in one write transaction (no lost update).
            with self._writing():
                row = execute("SELECT value FROM kv WHERE key = 'counter'").fetchone()
                value = (0 if row is None else int(loads(row[0]))) + 1
                execute(upsert, ("counter", dumps(value), None))
            return value

        def delete(i: int) -> bool:
            t = now()
            with self._writing():
                rows = execute(
                    "DELETE FROM kv WHERE key = ? RETURNING expiry", (k.delete(i),)
                ).fetchall()
            return any(exp is None or exp > t for (exp,) in rows)

        many = f"SELECT key, value, expiry FROM kv WHERE key IN ({', '.join('?' * 100)})"

        def mget(i: int) -> dict[str, Any]:
            t = now()
            return {
                key: loads(value)
                for key, value, exp in execute(many, k.batch(i))
                if exp is None or exp > t
            }

        upper = PREFIX[:-1] + chr(ord(PREFIX[-1]) + 1)
        listing_sql = (
            "SELECT key FROM kv WHERE key >= ? AND key < ? "
            "AND (expiry IS NULL OR expiry > ?) ORDER BY key"
        )

        def listing(i: int) -> list[str]:
            return [key for (key,) in execute(listing_sql, (PREFIX, upper, now()))]

        w = self.write_calls
        ww = None if w is None else max(1, w // 10)  # warm-up of a write
        return {
            "set": Op(lambda i: put(k.hit(i), SESSION), calls=w, warmup=ww),
            NEW_VALUE: Op(lambda i: put(k.hit(i), new_value(i)), calls=w, warmup=ww),
            "get hit": Op(lambda i: get(k.hit(i))),
            "get miss": Op(lambda i: get(k.miss(i))),
            "set with TTL": Op(lambda i: put(k.ttl_key(i), SESSION, TTL), calls=w, warmup=ww),
            "set (int)": Op(lambda i: put(k.int_key(i), i), calls=w, warmup=ww),
            "get hit (int)": Op(lambda i: get(k.int_key(i))),
            "increment": Op(incr, calls=w, warmup=ww),
            "delete": Op(delete, prepare=lambda i: put(k.delete(i), SESSION), calls=w, warmup=ww),
            "mset 100": Op(lambda i: self.put_rows(k.mapping(i).items()), calls=w, warmup=ww),
            "mget 100": Op(mget),
            "list user:1*": Op(listing, calls=LIST_CALLS_INDEXED, warmup=2),
        }

    def close(self) -> None:
        self.conn.close()


class DiskCache(Contestant):
    name = "diskcache"

    def __init__(self, workdir: Path, listing_keys: int, directory: Path | None = None) -> None:
        super().__init__(workdir, listing_keys)
        import diskcache

        self.directory = directory or workdir / "diskcache"
        self.cache: Any = diskcache.Cache(str(self.directory))

    def load(self) -> None:
        c, k = self.cache, self.k
        for start in range(0, k.n, 10_000):
            with c.transact():
                for key in k.users[start : start + 10_000]:
                    c.set(key, SESSION)
        with c.transact():
            for key in k.ints:
                c.set(key, 7)
        c.set("counter", 0)

    def ops(self) -> dict[str, Op]:
        c, k = self.cache, self.k

        def mset(i: int) -> None:
            with c.transact():
                for key, value in k.mapping(i).items():
                    c.set(key, value)

        def mget(i: int) -> dict[str, Any]:
            with c.transact():
                return {key: c[key] for key in k.batch(i)}

        def listing(i: int) -> list[str]:
            # No prefix query: iterate the keys (diskcache yields them in order).
            return [key for key in c.iterkeys() if key.startswith(PREFIX)]

        return {
            "set": Op(lambda i: c.set(k.hit(i), SESSION)),
            NEW_VALUE: Op(lambda i: c.set(k.hit(i), new_value(i))),
            "get hit": Op(lambda i: c.get(k.hit(i))),
            "get miss": Op(lambda i: c.get(k.miss(i))),
            "set with TTL": Op(lambda i: c.set(k.ttl_key(i), SESSION, expire=TTL)),
            "set (int)": Op(lambda i: c.set(k.int_key(i), i)),
            "get hit (int)": Op(lambda i: c.get(k.int_key(i))),
            "increment": Op(lambda i: c.incr("counter")),
            "delete": Op(
                lambda i: c.delete(k.delete(i)), prepare=lambda i: c.set(k.delete(i), SESSION)
            ),
            "mset 100": Op(mset),
            "mget 100": Op(mget),
            "list user:1*": Op(listing, calls=LIST_CALLS_SCAN, warmup=1),
        }

    def close(self) -> None:
        self.cache.close()


class SqliteDictStore(Contestant):
    name = "sqlitedict"

    def __init__(self, workdir: Path, listing_keys: int, path: Path | None = None) -> None:
        super().__init__(workdir, listing_keys)
        from sqlitedict import SqliteDict

        self.path = path or workdir / "sqlitedict.db"
        self.d: Any = SqliteDict(
            str(self.path), autocommit=True, journal_mode="WAL", outer_stack=False
        )

    def load(self) -> None:
        d, k = self.d, self.k
        for start in range(0, k.n, 10_000):
            d.update(dict.fromkeys(k.users[start : start + 10_000], SESSION))
        d.update(dict.fromkeys(k.ints, 7))
        d["counter"] = 0
        d.commit(blocking=True)

    def ops(self) -> dict[str, Op]:
        d, k = self.d, self.k

        def incr(i: int) -> int:
            value = d.get("counter", 0) + 1
            d["counter"] = value
            return int(value)

        def mset(i: int) -> None:
            d.update(k.mapping(i))

        def mget(i: int) -> dict[str, Any]:
            return {key: d[key] for key in k.batch(i)}

        def delete(i: int) -> None:
            with contextlib.suppress(KeyError):
                del d[k.delete(i)]

        def listing(i: int) -> list[str]:
            return sorted(key for key in d if key.startswith(PREFIX))

        def set_(key: str, value: Any) -> None:
            d[key] = value

        return {
            "set": Op(lambda i: set_(k.hit(i), SESSION)),
            NEW_VALUE: Op(lambda i: set_(k.hit(i), new_value(i))),
            "get hit": Op(lambda i: d.get(k.hit(i))),
            "get miss": Op(lambda i: d.get(k.miss(i))),
            # sqlitedict has no expiry.
            "set (int)": Op(lambda i: set_(k.int_key(i), i)),
            "get hit (int)": Op(lambda i: d.get(k.int_key(i))),
            "increment": Op(incr),
            "delete": Op(delete, prepare=lambda i: set_(k.delete(i), SESSION)),
            "mset 100": Op(mset),
            "mget 100": Op(mget),
            "list user:1*": Op(listing, calls=LIST_CALLS_SCAN, warmup=1),
        }

    def close(self) -> None:
        self.d.close()


# ---------------------------------------------------------------------------
# bulk load: n fresh keys, a session each, in batches
# ---------------------------------------------------------------------------


def _bulk_keys(n: int, batch: int) -> Iterator[list[str]]:
    for start in range(0, n, batch):
        yield [f"session:{i:08d}" for i in range(start, min(start + batch, n))]


def bulk_keyshelf(path: Path, n: int, batch: int) -> tuple[float, int]:
    """Seconds to load ``n`` sessions with ``kv.mset`` batches, and bytes on disk."""
    with keyshelf.open(path) as kv:
        took = 0.0
        for keys in _bulk_keys(n, batch):
            mapping = dict.fromkeys(keys, SESSION)
            start = time.perf_counter()
            kv.mset(mapping)
            took += time.perf_counter() - start
    checkpoint(path)
    return took, file_bytes(path)


def bulk_raw(path: Path, n: int, batch: int) -> tuple[float, int]:
    raw = RawSQLite(path.parent, 1, path=path)
    took = 0.0
    for keys in _bulk_keys(n, batch):
        mapping = dict.fromkeys(keys, SESSION)
        start = time.perf_counter()
        raw.put_rows(mapping.items())
        took += time.perf_counter() - start
    raw.close()
    checkpoint(path)
    return took, file_bytes(path)


def bulk_diskcache(path: Path, n: int, batch: int) -> tuple[float, int]:
    import diskcache

    cache = diskcache.Cache(str(path))
    took = 0.0
    for keys in _bulk_keys(n, batch):
        start = time.perf_counter()
        with cache.transact():
            for key in keys:
                cache.set(key, SESSION)
        took += time.perf_counter() - start
    cache.close()
    checkpoint(path / "cache.db")
    return took, file_bytes(path)


def bulk_sqlitedict(path: Path, n: int, batch: int) -> tuple[float, int]:
    from sqlitedict import SqliteDict

    d = SqliteDict(str(path), autocommit=False, journal_mode="WAL", outer_stack=False)
    took = 0.0
    for keys in _bulk_keys(n, batch):
        start = time.perf_counter()
        for key in keys:
            d[key] = SESSION
        d.commit()
        took += time.perf_counter() - start
    d.close()
    checkpoint(path)
    return took, file_bytes(path)


BULK: dict[str, Callable[[Path, int, int], tuple[float, int]]] = {
    "keyshelf sqlite": bulk_keyshelf,
    "raw sqlite3": bulk_raw,
    "diskcache": bulk_diskcache,
    "sqlitedict": bulk_sqlitedict,
}


def remove(path: Path) -> None:
    if path.is_dir():
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        path.rmdir()
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(path) + suffix)
