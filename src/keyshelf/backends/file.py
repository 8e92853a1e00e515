"""The JSON file backend: ``file:///abs/path/store.json`` (``.json.gz``: gzip).

The whole store is one human-readable JSON document (``docs/file.md``
specifies it): every namespace, key, typed value (as the codec's tag and
payload), absolute expiry, user metadata, ``created_at``, ``updated_at`` and
``version``. It is meant for configuration and small stores: every write
rewrites the whole file.

Guarantees:

* **Atomic writes.** A write builds the new document in a temporary file in
  the same directory, flushes and fsyncs it, renames it over the store with
  :func:`os.replace` and fsyncs the directory. A crash (even ``kill -9`` in the
  middle of a write) leaves either the old or the new document, never a
  half-written one. ``durable=false`` skips the two fsyncs: still never torn
  by a process crash, but an OS crash or power loss may lose recent writes.
* **Several processes.** Every write holds an exclusive ``flock`` on a sidecar
  ``<file>.lock`` for its whole read-modify-write, so no update is ever lost
  between processes (or between two stores opened on the same file in one
  process); threads of one store are serialised by a lock. ``flock`` locks
  belong to an open file description, not to the process (unlike the POSIX
  ``fcntl`` locks SQLite uses), so closing one store's descriptors never
  releases a lock another store holds. (On NFS, Linux emulates ``flock``
  with POSIX locks: keep stores on a local file system.) The file of an
  open SQLite store is refused without being opened, since closing a
  descriptor of it would drop that store's locks. Before every
  operation a store compares the file's identity (device, inode, size,
  mtime) with the version it holds and reloads it if another process
  replaced it, so it sees every write committed before the operation began.
  The store keeps the file it loaded open, so its inode cannot be reused by a
  later version and the comparison cannot be fooled.
* **Refuse rather than damage.** A file that is not a keyshelf JSON store
  (random bytes, other JSON, a newer format version, a corrupt record) is
  refused at open with :class:`IncompatibleStoreError` naming it, and is left
  byte-for-byte unchanged.
* **create / readonly.** ``create=False`` refuses a missing file with
  :class:`StoreNotFoundError` and creates nothing (an existing empty file is
  an empty store). ``readonly=True`` creates nothing (not even the lock
  file), and every write raises :class:`ReadOnlyStoreError` with nothing
  changed; reads reload the file whenever another process replaced it.
* **Expiry.** Instants come from the store's clock; expired records are
  invisible and stay in the file (``stats()`` counts them) until
  ``delete_expired()`` or an overwrite removes them.

POSIX only (``fcntl``). Open stores after ``fork()``, not before.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import logging
import os
import stat
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote

import orjson

from .. import _inuse
from .._file_format import FormatError, write_fields, write_from
from .._show import show
from ..changes import Change
from ..errors import (
    BackendError,
    BackendUnavailableError,
    IncompatibleStoreError,
    InvalidKeyError,
    InvalidURLError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreNotFoundError,
    UnsupportedOperationError,
)
from ..keys import MAX_KEY_LENGTH, check_key, check_namespace
from ..options import as_bool, as_path, as_str, refuse_unknown
from ..patterns import Matcher
from ..records import DELETE, Decision, MultiDecision, R, Record, Value, Write, new_record
from ._bounds import take_limits
from ._changelog import ChangeLog, TableFeed
from ._feed_bridge import FeedBridge
from ._file_feed import FEED_FORMAT_VERSION, log_from, log_json
from ._table import RecordTable, decide_many, live_namespaces
from .base import Backend

#: The ``format`` member that marks a keyshelf JSON store.
FORMAT = "keyshelf.file"
#: The format version this keyshelf writes (for a store without limits).
FORMAT_VERSION = 1
#: The version of a bounded store's file, which has a "bounds" member that a
#: reader must not ignore; the newest version this keyshelf reads.
BOUNDED_FORMAT_VERSION = 2

_GZIP_MAGIC = b"\x1f\x8b"
#: Seconds between two looks at the file's identity by a waiting watcher.
FEED_PROBE_INTERVAL = 0.005
# Beyond this the file is past what the backend is meant for: say so, once.
_LARGE = 16 * 1024 * 1024
_DUMP_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE

log = logging.getLogger("keyshelf")

_Ident = tuple[int, int, int, int]


def _record_json(record: Record) -> dict[str, Any]:
    fields = write_fields(record.tag, record.payload, record.expires_at, record.meta)
    fields["created_at"] = record.created_at
    fields["updated_at"] = record.updated_at
    fields["version"] = record.version
    return fields


def _fragment(record: Record) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(_record_json(record)))


def _live(record: Record | None, now: int) -> bool:
    return record is not None and (record.expires_at is None or record.expires_at > now)


class FileBackend(Backend):
    """One keyshelf JSON document, shared safely by threads and processes."""

    multi_key_atomic = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        compress: bool | None = None,
        durable: bool = True,
        create: bool = True,
        readonly: bool = False,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.location = str(self.path)
        self._compress = self.path.name.endswith(".gz") if compress is None else compress
        self._durable = durable
        self._lock = threading.RLock()
        # The committed state of the file, as of ``_ident``: the record table
        # shared with the memory backend (its sorted index is built by the
        # first listing after a load and then kept current by the writes).
        self._data: dict[str, RecordTable] = {}
        # Serialised records, for rewriting the file without re-encoding
        # everything. None after a load: built on the first write (readers
        # never pay for it) from ``_loaded``, the parsed objects.
        self._frags: dict[str, dict[str, orjson.Fragment]] | None = {}
        self._loaded: dict[str, dict[str, Any]] = {}
        self._ident: _Ident | None = None
        self._held: int | None = None  # the loaded file, kept open (see module doc)
        self._mode = 0o644
        self._dirty = False
        self._lock_fd: int | None = None
        self._pid = os.getpid()
        self._closed = False
        self._warned = False
        self._create_missing = create and not readonly
        self._readonly = readonly
        self._stored_bounds: Any = None  # the "bounds" member of the file loaded last
        # The change feed (_file_feed): the "changes" member of the file loaded
        # last, as a log that the record tables append to while a write runs.
        self._log = ChangeLog(threading.Condition(self._lock))
        self._parsed_log: ChangeLog | None = None
        self._open()

    # -- opening ------------------------------------------------------------

    def _open(self) -> None:
        path = self.path
        if path.is_dir():
            raise IncompatibleStoreError(f"{path} is a directory, not a keyshelf JSON file")
        if not self._create_missing and not path.exists():
            raise StoreNotFoundError(
                f"{path} does not exist; nothing was created "
                f"(open it without create=False or readonly=True to create a store)"
            )
        if not path.parent.is_dir():
            raise BackendUnavailableError(
                f"Cannot open {path}: directory {path.parent} does not exist"
            )
        if _inuse.in_use(path):
            # Reading it would close a descriptor of it, which drops the
            # SQLite store's locks (see _inuse).
            raise IncompatibleStoreError(
                f"{path} is the database file of an open SQLite store, not a keyshelf JSON store"
            )
        try:
            # Validate an existing file before creating anything beside it, so
            # that a foreign file is refused with nothing changed.
            with self._lock:
                self._refresh()
            if self._readonly:
                return  # no lock file, no clean-up, nothing created
            self._lock_fd = self._open_lock()
            with self._writing():
                self._remove_orphans()
                if self._ident is None and not path.exists():
                    if not self._create_missing:
                        raise StoreNotFoundError(f"{path} was removed while it was being opened")
                    self._create()
        except BaseException:
            self.close()
            raise

    def _open_lock(self) -> int:
        lock_path = f"{self.path}.lock"
        try:
            return os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise BackendUnavailableError(
                f"Cannot create the lock file {lock_path} for {self.path}: {exc.strerror}"
            ) from exc

    def _create(self) -> None:
        # O_EXCL with 0o666 lets the umask pick the new file's mode, which
        # every later rewrite then keeps.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            self._refresh()
            return
        except OSError as exc:
            raise BackendUnavailableError(f"Cannot create {self.path}: {exc.strerror}") from exc
        try:
            self._mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        self._dirty = True  # write the empty document when the block ends

    def _remove_orphans(self) -> None:
        # Under the lock no writer is between creating and renaming its
        # temporary file, so any left over is from a writer that crashed.
        for orphan in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                orphan.unlink()

    # -- loading ------------------------------------------------------------

    def _refresh(self) -> None:
        """Reload the file if another writer replaced it since we loaded it."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._ident is not None or self._data:
                self._reset()
            return
        except OSError as exc:
            raise BackendUnavailableError(f"Cannot read {self.path}: {exc.strerror}") from exc
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self._ident:
            self._load()

    def _reset(self) -> None:
        self._log = ChangeLog(threading.Condition(self._lock))
        self._data, self._frags, self._loaded = {}, {}, {}
        self._ident = None
        self._hold(None)

    def _hold(self, fd: int | None) -> None:
        old, self._held = self._held, fd
        if old is not None:
            os.close(old)

    def _load(self) -> None:
        try:
            # O_NONBLOCK: a FIFO in the store's place must be refused, not wait for a writer.
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self._reset()
            return
        except OSError as exc:
            raise BackendUnavailableError(f"Cannot read {self.path}: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IncompatibleStoreError(f"{self.path} is not a regular file")
            with open(fd, "rb", closefd=False) as handle:
                raw = handle.read()
            data, loaded = self._parse(raw, st.st_mtime_ns // 1_000_000)
        except OSError as exc:
            os.close(fd)
            raise BackendUnavailableError(f"Cannot read {self.path}: {exc.strerror}") from exc
        except BaseException:
            os.close(fd)
            raise
        self._data, self._loaded, self._frags = data, loaded, None
        parsed, self._parsed_log = self._parsed_log, None
        self._log = ChangeLog(threading.Condition(self._lock)) if parsed is None else parsed
        self._ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._mode = stat.S_IMODE(st.st_mode)
        self._hold(fd)

    def _incompatible(self, why: str) -> IncompatibleStoreError:
        return IncompatibleStoreError(f"{self.path} {why}")

    def _parse(
        self, raw: bytes, mtime: int
    ) -> tuple[dict[str, RecordTable], dict[str, dict[str, Any]]]:
        """Records from a file's bytes, and the parsed objects of complete records."""
        if raw[:2] == _GZIP_MAGIC:
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as exc:
                raise self._incompatible(f"is a corrupt gzip file: {exc}") from exc
        if not raw.strip():
            return {}, {}  # an empty file is an empty store (e.g. `touch`)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self._incompatible(f"is not a keyshelf JSON store: not JSON ({exc})") from exc
        if type(doc) is not dict or doc.get("format") != FORMAT:
            raise self._incompatible(
                f'is not a keyshelf JSON store: no "format": "{FORMAT}" member'
            )
        version = doc.get("format_version")
        if type(version) is not int or version < 1:
            raise self._incompatible(f"has an invalid format_version {version!r}")
        if version > FEED_FORMAT_VERSION:
            raise self._incompatible(
                f"holds keyshelf file format version {version}; this keyshelf reads up to "
                f"version {FEED_FORMAT_VERSION}: upgrade keyshelf"
            )
        self._parse_extras(doc)
        changes = doc.get("changes")
        if (changes is None) != (version != FEED_FORMAT_VERSION):
            raise self._incompatible(
                f'is corrupt: a "changes" member goes with format_version {FEED_FORMAT_VERSION} '
                "and only with it"
            )
        try:
            self._parsed_log = (
                None if changes is None else log_from(changes, threading.Condition(self._lock))
            )
        except FormatError as exc:
            raise self._incompatible(f"is corrupt: {exc}") from None
        spaces = doc.get("namespaces", {})
        if type(spaces) is not dict:
            raise self._incompatible('is corrupt: "namespaces" is not an object')
        data: dict[str, RecordTable] = {}
        loaded: dict[str, dict[str, Any]] = {}
        for ns, table in spaces.items():
            if type(table) is not dict:
                raise self._incompatible(f"is corrupt: namespace {ns!r} is not an object")
            try:
                check_namespace(ns)
            except InvalidKeyError as exc:
                raise self._incompatible(f"is corrupt: bad namespace {ns!r}: {exc}") from None
            records: dict[str, Record] = {}
            complete: dict[str, Any] = {}
            for key, obj in table.items():
                try:
                    # The common case inline: check_key would also fill the
                    # process-wide cache of hot keys with every key of the file.
                    plain = 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()
                    if not plain or key.startswith("__"):
                        check_key(key)
                    records[key], full = self._record(obj, mtime)
                except (FormatError, InvalidKeyError) as exc:
                    raise self._incompatible(
                        f"is corrupt: record {key!r} in namespace {ns!r}: {exc}"
                    ) from None
                if full:
                    complete[key] = obj
            if records:
                data[ns] = RecordTable(records)
                loaded[ns] = complete
        return data, loaded

    @staticmethod
    def _record(obj: Any, mtime: int) -> tuple[Record, bool]:
        """A record from its object; True if the object has every field."""
        write = write_from(obj)
        created = obj.get("created_at")
        updated = obj.get("updated_at")
        version = obj.get("version")
        for name, value in (("created_at", created), ("updated_at", updated), ("version", version)):
            if value is not None and (type(value) is not int or value < 0):
                raise FormatError(f'"{name}" must be a non-negative integer')
        # A hand-written record may leave out the system fields.
        record = Record(
            write.tag,
            write.payload,
            write.expires_at,
            write.meta,
            mtime if created is None else created,
            mtime if updated is None else updated,
            1 if version is None else version,
        )
        return record, created is not None and updated is not None and version is not None

    # -- writing ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"The store {self.path} is closed")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            self._refresh()
            yield

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the inter-process lock over refresh, change and save.

        Mutations set ``_dirty``; the document is written once at the end.
        If anything fails after a mutation, the in-memory state is dropped
        and reloaded from the file (which still holds the last commit).
        """
        with self._lock:
            self._check_open()
            if self._readonly:
                raise ReadOnlyStoreError(
                    f"Cannot write {self.path}: the store was opened with readonly=True; "
                    f"nothing was changed"
                )
            lock_fd = self._lock_fd
            if lock_fd is None or os.getpid() != self._pid:
                # A forked child must not share its parent's lock description.
                lock_fd = self._lock_fd = self._open_lock()
                self._pid = os.getpid()
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise BackendError(f"Cannot lock {self.path}: {exc.strerror}") from exc
            self._dirty = False
            try:
                self._refresh()
                self._fragments()
                if self._log.enabled:
                    for ns, table in self._data.items():
                        table.feed = TableFeed(self._log, ns)
                yield
                if self._dirty:
                    self._save()
            except BaseException:
                if self._dirty:
                    self._ident = None
                    self._hold(None)
                raise
            finally:
                self._dirty = False
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _fragments(self) -> dict[str, dict[str, orjson.Fragment]]:
        frags = self._frags
        if frags is None:
            frags = {}
            for ns, table in self._data.items():
                loaded = self._loaded.get(ns, {})
                frags[ns] = {
                    key: orjson.Fragment(orjson.dumps(loaded[key]))
                    if key in loaded
                    else _fragment(record)
                    for key, record in table.records.items()
                }
            self._frags, self._loaded = frags, {}
        return frags

    def _put(self, ns: str, key: str, record: Record) -> None:
        self._dirty = True
        table = self._data.get(ns)
        if table is None:
            table = self._data[ns] = RecordTable()
            if self._log.enabled:
                table.feed = TableFeed(self._log, ns)
        table.put(key, record)
        self._fragments().setdefault(ns, {})[key] = _fragment(record)

    def _remove(self, ns: str, key: str) -> Record | None:
        table = self._data.get(ns)
        record = None if table is None else table.remove(key)
        if table is None or record is None:
            return None
        self._dirty = True
        frags = self._fragments()
        frags[ns].pop(key, None)
        if not table:
            del self._data[ns]
            frags.pop(ns, None)
        return record

    def _parse_extras(self, doc: dict[str, Any]) -> None:
        """Read the document's members beyond the records: a bounded store's "bounds"."""
        self._stored_bounds = doc.get("bounds")

    def _extra_members(self) -> dict[str, Any]:
        """Members to write beside the records (a bounded store: "bounds", version 2).

        A store opened without limits refuses to save over a file that another
        store has bounded since: it would drop the limits.
        """
        if self._stored_bounds is not None:
            raise IncompatibleStoreError(
                f"{self.path} was bounded (max_keys/max_bytes) by another store after this "
                f"one opened it; nothing was written: open the store again to write to it"
            )
        return {}

    def _save(self) -> None:
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "namespaces": self._fragments()}
        doc.update(self._extra_members())
        if self._log.enabled:
            doc["changes"] = log_json(self._log)
            doc["format_version"] = FEED_FORMAT_VERSION
        body = orjson.dumps(doc, option=_DUMP_OPTIONS)
        if len(body) > _LARGE and not self._warned:
            self._warned = True
            log.warning(
                "keyshelf: %s is %d MiB; the file backend rewrites the whole file on "
                "every write and is meant for small stores: consider sqlite://",
                self.path,
                len(body) >> 20,
            )
        if self._compress:
            # mtime=0: the same store gives the same bytes.
            body = gzip.compress(body, compresslevel=6, mtime=0)
        directory = self.path.parent
        # Renaming over a read-only file would succeed: honour its permissions.
        effective = os.access in os.supports_effective_ids
        if os.path.exists(self.path) and not os.access(self.path, os.W_OK, effective_ids=effective):
            raise BackendUnavailableError(f"Cannot write {self.path}: the file is read-only")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise BackendUnavailableError(f"Cannot write {self.path}: {exc.strerror}") from exc
        try:
            os.fchmod(fd, self._mode)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            if self._durable:
                os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise BackendError(f"Cannot write {self.path}: {exc.strerror}") from exc
            raise
        # From here the new document is committed; a failed directory fsync
        # only weakens durability, it cannot tear the file.
        if self._durable:
            with contextlib.suppress(OSError):
                dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        st = os.fstat(fd)
        self._ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._hold(fd)

    # -- helpers ------------------------------------------------------------

    def _space(self, ns: str) -> RecordTable:
        """The table of ``ns``; a namespace the file does not hold reads as empty."""
        return self._data.get(ns) or RecordTable()

    def _get_live(self, ns: str, key: str, now: int) -> Record | None:
        table = self._data.get(ns)
        return None if table is None else table.live(key, now)

    # -- primitives ---------------------------------------------------------

    def get(self, ns: str, key: str, now: int) -> Value | None:
        with self._reading():
            record = self._get_live(ns, key, now)
        return None if record is None else (record.tag, record.payload)

    def get_record(self, ns: str, key: str, now: int) -> Record | None:
        with self._reading():
            return self._get_live(ns, key, now)

    def exists(self, ns: str, key: str, now: int) -> bool:
        with self._reading():
            return self._get_live(ns, key, now) is not None

    def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        found: dict[str, Value] = {}
        with self._reading():
            for key in keys:
                record = self._get_live(ns, key, now)
                if record is not None:
                    found[key] = (record.tag, record.payload)
        return found

    def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        with self._writing():
            old = self._get_live(ns, key, now)
            write, result = decide(old)
            if isinstance(write, Write):
                self._put(ns, key, new_record(write, old, now))
            elif write is DELETE:
                self._remove(ns, key)
            return result

    def update_many(self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]) -> R:
        # Under the file lock, saved once: every change or none reaches the file.
        with self._writing():
            changes, result = decide_many(
                lambda key: self._get_live(ns, key, now), keys, now, decide
            )
            with self._log.group():  # one revision for the whole commit
                for key, record in changes:
                    if record is None:
                        self._remove(ns, key)
                    else:
                        self._put(ns, key, record)
            return result

    def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        with self._writing():
            for key, (tag, payload) in items:
                old = self._get_live(ns, key, now)
                meta = None if old is None else old.meta
                self._put(ns, key, new_record(Write(tag, payload, expires_at, meta), old, now))

    def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        with self._writing():
            for key, write in items:
                self._put(ns, key, new_record(write, self._get_live(ns, key, now), now))

    def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        removed: list[str] = []
        with self._writing():
            for key in keys:
                record = self._remove(ns, key)
                if _live(record, now):
                    removed.append(key)
        return removed

    def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        with self._writing():
            old = self._get_live(ns, key, now)
            if old is None or (expires_at is None and old.expires_at is None):
                return False
            self._put(ns, key, old._replace(expires_at=expires_at))
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
        with self._reading():
            return self._space(ns).scan(matcher, now, after, limit, values)

    def scan_records(
        self, ns: str, now: int, after: str | None, limit: int
    ) -> list[tuple[str, Record]]:
        with self._reading():
            return self._space(ns).scan_records(now, after, limit)

    def count(self, ns: str, matcher: Matcher, now: int) -> int:
        with self._reading():
            return self._space(ns).count(matcher, now)

    def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        live = 0
        with self._writing():
            # The fragments and the empty namespace go through _remove.
            for key in self._space(ns).matching(matcher):
                live += _live(self._remove(ns, key), now)
        return live

    def namespaces(self, now: int) -> list[str]:
        with self._reading():
            return live_namespaces(self._data, now)

    def purge_expired(self, ns: str | None, now: int) -> int:
        removed = 0
        with self._writing():
            spaces = list(self._data) if ns is None else [ns]
            self._log.expiring = True  # these removals are "expire" changes
            try:
                for space in spaces:
                    for key in self._space(space).expired(now):
                        self._remove(space, key)
                        removed += 1
            finally:
                self._log.expiring = False
        return removed

    def stats(self, ns: str, now: int) -> dict[str, Any]:
        with self._reading():
            return self._space(ns).stats(now)

    def total_size(self, ns: str, now: int) -> int:
        with self._reading():
            return self._space(ns).total_size(now)

    # -- change feed (_file_feed, docs/changes.md) ----------------------------------

    change_feed = True

    def enable_changes(self, history_count: int | None, history_ms: int | None) -> None:
        if type(self) is not FileBackend:
            raise UnsupportedOperationError(
                f"The change feed and limits (max_keys/max_bytes) cannot be combined on "
                f"a file store ({self.path}); nothing was changed"
            )
        with self._lock:
            self._check_open()
            self._refresh()
            log = self._log
            if log.enabled and (log.history_count, log.history_ms) == (history_count, history_ms):
                return  # already so: nothing to write (a read-only store may ask too)
        with self._writing():
            self._log.enable(history_count, history_ms)
            self._dirty = True

    def changes_enabled(self) -> bool:
        with self._reading():
            return self._log.enabled

    def revision(self, now: int, ns: str | None = None) -> int:
        with self._reading():
            return self._log.revision

    def changes(self, ns: str | None, after: int, limit: int, now: int) -> list[Change]:
        with self._reading():
            return self._log.read(ns, after, limit)

    def feed_probe(self) -> tuple[int, ...]:
        """The file's identity: every committed write replaces the file (the doorbell)."""
        self._check_open()
        try:
            st = os.stat(self.path)
        except OSError:
            return ()
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def wait_changes(self, after: int, timeout: float, ns: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        first = self.feed_probe()
        while not self._closed and time.monotonic() < deadline:
            time.sleep(min(FEED_PROBE_INTERVAL, max(deadline - time.monotonic(), 0)))
            if self._closed or self.feed_probe() != first:
                return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._reset()
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)
                self._lock_fd = None


def _path(url: SplitResult, options: dict[str, Any]) -> str:
    option = options.pop("path", None)
    if url.netloc not in ("", "localhost", "."):
        raise InvalidURLError(
            f"file:// URLs take no host: use file:///abs/store.json or "
            f"file://./relative/store.json, got {url.geturl()!r}"
        )
    path = unquote(url.path)
    if url.netloc == "." and path:
        path = "." + path
    if option is not None:
        if path:
            raise InvalidURLError("Give the file either in the URL or as path=, not both")
        path = as_str("path", option)
    if not path or path.endswith("/"):
        raise InvalidURLError(
            f"A file store needs a file path (file:///data/store.json), got {url.geturl()!r}"
        )
    return as_path("File store path", path)


def _bounded_or_plain(path: str, limits: Any, **settings: Any) -> FileBackend:
    """The backend of a store: bounded if ``limits`` are given or the file holds some."""
    from ._file_bounds import BoundedFileBackend  # that module builds on this one

    if limits is None:
        plain = FileBackend(path, **settings)
        if plain._stored_bounds is None:
            return plain
        plain.close()
    return BoundedFileBackend(path, limits=limits, **settings)


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``file:///abs/path.json``, ``file://./relative.json`` (``.gz``: gzip).

    Options: ``compression`` (``gzip`` or ``none``; default from the
    ``.gz`` suffix), ``durable`` (default true: fsync every write), ``path``
    (instead of the URL's), ``format`` (only ``json``, as in dataknobs-kv),
    ``create`` (default true; false: the file must exist, else
    StoreNotFoundError and nothing is created) and ``readonly`` (default
    false; true: nothing is created, no lock file, every write raises
    ReadOnlyStoreError; reads see other processes' writes).
    """
    path = _path(url, options)
    compression = options.pop("compression", None)
    if compression in (None, ""):
        compress = None
    elif isinstance(compression, str) and compression.lower() in ("gzip", "gz"):
        compress = True
    elif isinstance(compression, str) and compression.lower() == "none":
        compress = False
    else:
        raise InvalidURLError(f"Option compression must be gzip or none, got {show(compression)}")
    fmt = options.pop("format", "json")
    if fmt != "json":
        raise InvalidURLError(f"The file backend stores JSON only; got format={show(fmt)}")
    durable = as_bool("durable", options.pop("durable", True))
    create_store = as_bool("create", options.pop("create", True))
    readonly = as_bool("readonly", options.pop("readonly", False))
    limits = take_limits(options)
    refuse_unknown("file", options)
    try:
        backend = _bounded_or_plain(
            path, limits, compress=compress, durable=durable, create=create_store, readonly=readonly
        )
    except OSError as exc:  # e.g. no permission to look into the directory
        raise BackendUnavailableError(f"Cannot open {path}: {exc.strerror}") from exc
    # Calls take a lock and may block on disk or on another process: run
    # them in a worker thread so the event loop never waits.
    if not asynchronous:
        return backend
    # Reads of the document in memory run inline on the event loop's thread;
    # writes (file lock, save, fsync) and reloads run in the worker threads
    # (_file_fast.py says which go where).
    from ._file_fast import fast_path

    return FeedBridge(backend, threads=2, inline=fast_path(backend))


__all__ = ["FORMAT", "FORMAT_VERSION", "FileBackend", "create"]
