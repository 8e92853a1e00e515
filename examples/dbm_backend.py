"""A keyshelf backend over the standard library's ``dbm``: ``dbm:///path/to/store``.

An example of a third-party backend, written against the public interface
only (docs/backends.md, "Writing a backend", walks through it). It passes
keyshelf's whole conformance kit on both APIs (tests/test_example_backend.py).

Usage::

    import keyshelf
    import dbm_backend

    keyshelf.register("dbm", dbm_backend.create)    # or an entry point, see below
    with keyshelf.open("dbm:///var/lib/app/store") as kv:
        kv.set("greeting", "hello", ttl=60)

A package would declare the scheme instead, so that ``keyshelf.open`` finds it
without any call::

    [project.entry-points."keyshelf.backends"]
    dbm = "dbm_backend:create"

How it stores: one ``dbm`` database (``dbm.dumb``, present on every Python)
whose keys are ``namespace NUL key`` and whose values are JSON records (type
tag, payload, expiry, user metadata, created/updated instants, version).
NUL cannot occur in a keyshelf key or namespace, so the split is exact. The
listing order and expiry of every key are also held in memory (a sorted
list and a dict per namespace, loaded when the database opens), so a page
of a listing costs a binary search plus the keys it walks, and a key-only
listing reads nothing from disk.

Guarantees and limits: every primitive holds one lock, so each is atomic
among the threads of a process, and every store opened on the same path in
a process shares one database (a second ``open()`` sees the first one's
writes). ``dbm`` has neither transactions nor locking: one process at a
time (a second process is refused: :class:`keyshelf.BackendUnavailableError`),
and a crash during a multi-key write may leave part of it written.
Expired records stay on disk until ``purge_expired`` (``kv.cleanup()``)
removes them; every read treats them as gone.
"""

from __future__ import annotations

import base64
import bisect
import dbm.dumb
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import SplitResult, unquote

import keyshelf
from keyshelf.backends import Backend
from keyshelf.patterns import Matcher
from keyshelf.records import (
    DELETE,
    Decision,
    MultiDecision,
    R,
    Record,
    Value,
    Write,
    new_record,
    stats_dict,
)

_SEP = "\x00"  # between namespace and key: a control character, never in either


def _encode(record: Record) -> bytes:
    payload: Any = record.payload
    kind = "b" if isinstance(payload, bytes) else "v"
    if kind == "b":
        payload = base64.b64encode(payload).decode("ascii")
    meta = None if record.meta is None else base64.b64encode(record.meta).decode("ascii")
    return json.dumps(
        [
            record.tag,
            kind,
            payload,
            record.expires_at,
            meta,
            record.created_at,
            record.updated_at,
            record.version,
        ],
        separators=(",", ":"),
    ).encode("utf-8")


def _decode(data: bytes) -> Record:
    tag, kind, payload, expires_at, meta, created_at, updated_at, version = json.loads(data)
    if kind == "b":
        payload = base64.b64decode(payload)
    return Record(
        tag,
        payload,
        expires_at,
        None if meta is None else base64.b64decode(meta),
        created_at,
        updated_at,
        version,
    )


def _live(expires_at: int | None, now: int) -> bool:
    return expires_at is None or expires_at > now


class _Database:
    """One open ``dbm`` file, shared by every store of this process on its path.

    ``keys[ns]`` is the sorted list of the namespace's stored keys (expired
    ones too, until purged) and ``expiry[ns]`` maps each to its expiry.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.users = 0
        # One process at a time: dbm has no locking of its own.
        try:
            self._lockfile = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise keyshelf.BackendUnavailableError(f"Cannot open dbm store {path}: {exc}") from exc
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Held open for the database's whole life, closed by close().
            self.db = dbm.dumb.open(path, "c")  # noqa: SIM115
        except BaseException as exc:
            os.close(self._lockfile)
            if isinstance(exc, BlockingIOError):
                raise keyshelf.BackendUnavailableError(
                    f"dbm store {path} is open in another process"
                ) from None
            raise
        self.keys: dict[str, list[str]] = {}
        self.expiry: dict[str, dict[str, int | None]] = {}
        for raw in self.db.keys():
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            ns, _, key = text.partition(_SEP)
            self.expiry.setdefault(ns, {})[key] = _decode(self.db[raw]).expires_at
        for ns, expiries in self.expiry.items():
            self.keys[ns] = sorted(expiries)

    def close(self) -> None:
        self.db.close()
        os.close(self._lockfile)

    # -- records ------------------------------------------------------------

    def read(self, ns: str, key: str) -> Record | None:
        """The stored record (live or not), or None."""
        if key not in self.expiry.get(ns, {}):
            return None
        return _decode(self.db[f"{ns}{_SEP}{key}".encode()])

    def live(self, ns: str, key: str, now: int) -> Record | None:
        expiries = self.expiry.get(ns)
        if expiries is None or key not in expiries or not _live(expiries[key], now):
            return None
        return self.read(ns, key)

    def write(self, ns: str, key: str, record: Record) -> None:
        self.db[f"{ns}{_SEP}{key}".encode()] = _encode(record)
        expiries = self.expiry.setdefault(ns, {})
        if key not in expiries:
            bisect.insort(self.keys.setdefault(ns, []), key)
        expiries[key] = record.expires_at

    def remove(self, ns: str, key: str, now: int) -> bool:
        """Remove ``key`` if stored; True if it was live."""
        expiries = self.expiry.get(ns, {})
        if key not in expiries:
            return False
        del self.db[f"{ns}{_SEP}{key}".encode()]
        keys = self.keys[ns]
        del keys[bisect.bisect_left(keys, key)]
        return _live(expiries.pop(key), now)

    def walk(self, ns: str, matcher: Matcher, after: str | None) -> Iterator[str]:
        """Stored keys matching ``matcher`` in order, from max(its prefix, ``after``)."""
        keys = self.keys.get(ns, [])
        prefix = matcher.prefix
        if after is not None and after >= prefix:
            start = bisect.bisect_right(keys, after)
        else:
            start = bisect.bisect_left(keys, prefix)
        for index in range(start, len(keys)):
            key = keys[index]
            if not key.startswith(prefix):
                return
            if matcher.match_all or matcher.prefix_only or matcher.match(key):
                yield key


# path -> the database every store of this process on that path shares.
_open: dict[str, _Database] = {}
_open_lock = threading.Lock()


class DbmBackend(Backend):
    """A keyshelf backend over one ``dbm`` file (see the module docstring)."""

    # update_many below: kv.atomic() and kv.transaction() work (within one
    # process, as everything here; a crash may leave part of a commit written).
    multi_key_atomic = True

    def __init__(self, path: str) -> None:
        self.location = f"dbm://{path}"
        path = os.path.abspath(path)
        with _open_lock:
            database = _open.get(path)
            if database is None:
                database = _open[path] = _Database(path)
            database.users += 1
        self._database: _Database | None = database

    def _db(self) -> _Database:
        if self._database is None:
            raise keyshelf.StoreClosedError(f"The store {self.location} is closed")
        return self._database

    # -- the abstract primitives ----------------------------------------------

    def get_record(self, ns: str, key: str, now: int) -> Record | None:
        db = self._db()
        with db.lock:
            return db.live(ns, key, now)

    def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        db = self._db()
        with db.lock:
            old = db.live(ns, key, now)
            action, result = decide(old)  # if it raises, nothing was written
            if isinstance(action, Write):
                db.write(ns, key, new_record(action, old, now))
            elif action is DELETE:
                db.remove(ns, key, now)
            return result

    def update_many(self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]) -> R:
        # Optional (the default refuses): several keys under the one lock.
        db = self._db()
        with db.lock:
            olds = {key: db.live(ns, key, now) for key in keys}
            actions, result = decide(olds)  # if it raises, nothing was written
            for key, action in actions.items():
                if isinstance(action, Write):
                    db.write(ns, key, new_record(action, olds[key], now))
                elif action is DELETE:
                    db.remove(ns, key, now)
            return result

    def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        db = self._db()
        with db.lock:
            for key, (tag, payload) in items:
                old = db.live(ns, key, now)
                meta = None if old is None else old.meta  # a set keeps the user metadata
                db.write(ns, key, new_record(Write(tag, payload, expires_at, meta), old, now))

    def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        db = self._db()
        removed: list[str] = []
        with db.lock:
            for key in keys:
                if db.remove(ns, key, now):
                    removed.append(key)
        return removed

    def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        db = self._db()
        with db.lock:
            old = db.live(ns, key, now)
            if old is None or (expires_at is None and old.expires_at is None):
                return False
            db.write(ns, key, old._replace(expires_at=expires_at))
            return True

    def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        db = self._db()
        rows: list[tuple[str, Value | None]] = []
        with db.lock:
            expiries = db.expiry.get(ns, {})
            for key in db.walk(ns, matcher, after):
                if limit is not None and len(rows) >= limit:
                    break
                if not _live(expiries[key], now):
                    continue
                if values:
                    record = db.read(ns, key)
                    assert record is not None  # the lock is held
                    rows.append((key, (record.tag, record.payload)))
                else:
                    rows.append((key, None))
        return rows

    def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        db = self._db()
        with db.lock:
            return sum(db.remove(ns, key, now) for key in list(db.walk(ns, matcher, None)))

    def namespaces(self, now: int) -> list[str]:
        db = self._db()
        with db.lock:
            return sorted(
                ns
                for ns, expiries in db.expiry.items()
                if any(_live(expires, now) for expires in expiries.values())
            )

    def purge_expired(self, ns: str | None, now: int) -> int:
        db = self._db()
        with db.lock:
            spaces = list(db.expiry) if ns is None else [ns]
            removed = 0
            for space in spaces:
                expiries = db.expiry.get(space, {})
                for key in [k for k, expires in expiries.items() if not _live(expires, now)]:
                    db.remove(space, key, now)
                    removed += 1
            return removed

    def close(self) -> None:
        database, self._database = self._database, None
        if database is None:
            return
        with _open_lock:
            database.users -= 1
            if database.users == 0:
                del _open[database.path]
                with database.lock:
                    database.close()

    # -- a derived primitive overridden: the default sees live records only ----

    def stats(self, ns: str, now: int) -> dict[str, Any]:
        # Expired records stay until purged, and stats() counts them.
        db = self._db()
        with db.lock:
            expiries = db.expiry.get(ns, {})
            active = with_ttl = 0
            for expires in expiries.values():
                if _live(expires, now):
                    active += 1
                    with_ttl += expires is not None
            return stats_dict(len(expiries), active, with_ttl)


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> DbmBackend:
    """The factory for ``dbm://<path>``: refuses a bad URL or option before creating anything.

    ``create=False`` opens only an existing store. The same sync backend
    serves the async API: keyshelf runs its calls in a worker thread.
    """
    path = unquote(url.netloc + url.path)
    if not path or path.endswith("/"):
        raise keyshelf.InvalidURLError(f"dbm:// needs a file path, got {url.geturl()!r}")
    create_new = options.pop("create", True)
    if options:
        raise keyshelf.InvalidURLError(f"dbm:// has no option {sorted(options)[0]!r}")
    if not create_new and not os.path.exists(path + ".dir"):
        raise keyshelf.StoreNotFoundError(f"No dbm store at {path} (create=False)")
    return DbmBackend(path)
