"""Which SQLite primitives the async store runs inline on the event loop's thread.

The async API's cost on SQLite used to be the hop to a worker thread and back
(~50-100 µs), not the statement (~3-15 µs). The fast path runs a call on the
loop's thread when it cannot wait for long, on that thread's own *no-wait*
connection (``busy_timeout=0``, no retry sleeps: see
:meth:`SQLiteBackend.enter_nowait`). When the database is locked by another
connection the attempt fails at once with SQLITE_BUSY, before anything was
written, and raises :class:`~._fastpath.Busy`: the bridge tries it inline
again after short sleeps on the loop (``BUSY_RETRIES``), then hands the call
to a worker thread, whose connection waits for the lock as the sync API does.
Every failed attempt left nothing behind:

* a single statement in autocommit mode that gets SQLITE_BUSY did nothing (a
  write statement that fails is rolled back whole by SQLite);
* a ``BEGIN IMMEDIATE`` that gets SQLITE_BUSY took no lock and wrote nothing;
* a COMMIT that gets SQLITE_BUSY (possible in rollback-journal modes only)
  leaves its transaction open: it is rolled back before the hand-over, and
  the retry (inline or in the worker thread) runs the whole call again from
  its start.

Inline, by primitive (``INLINE_READS`` / ``INLINE_WRITES``): point reads and
writes of one key, the read-modify-write transactions of one key
(``update``, ``increment``, ``append``, ``compare_and_swap``,
``set_metadata``), and batch calls (``get_many``, ``sizes``, ``put_many``,
``delete``) of at most :data:`INLINE_BATCH` keys. Always in a worker thread:
scans and counts (``scan``, ``scan_records``, ``count``, ``stats``,
``total_size``, ``namespaces``), ``delete_matching``, ``purge_expired``,
``put_records``, bigger batches, ``update_many`` and ``close``: their cost
grows with the data.

Writes run inline only in WAL mode with ``synchronous=NORMAL`` (the
default): a commit there appends to the WAL without an fsync. With
``durable=true`` (``synchronous=FULL``) or another journal mode every commit
fsyncs, which can take milliseconds, so writes go to a worker thread and only
the reads run inline. The journal mode is read when the store opens.

Checkpoints never run on the loop's thread: a commit that finds the WAL
past SQLite's autocheckpoint size (1000 pages) copies the WAL into the
database and fsyncs it, milliseconds to tens of milliseconds of I/O. The
no-wait connection has ``wal_autocheckpoint=0``, and every
:data:`CHECKPOINT_EVERY`-th inline write is handed to a worker thread, whose
connection commits it and checkpoints when the WAL is due (as do the
connections of other processes and of the sync API); the WAL stays within
about a thousand pages more than SQLite's own bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._fastpath import Busy, FastPath, WouldBlock

if TYPE_CHECKING:
    from .sqlite import SQLiteBackend

#: The most keys (or items) a batch call may hold to run inline: 64 rows are
#: read or written in ~50-150 µs.
INLINE_BATCH = 64

#: Every this many inline writes, one goes to the worker thread instead (see
#: above): 1 write in 256 pays a thread hop (under 1 %, so not in the p99),
#: and the WAL stays within ~300 pages (~1 per write) of SQLite's own bound.
CHECKPOINT_EVERY = 256

#: Read primitives tried inline (point reads, small batches).
INLINE_READS = ("get", "get_record", "exists", "time_left", "get_many", "sizes")
#: Write primitives tried inline in WAL mode without ``durable``.
INLINE_WRITES = (
    "put",
    "increment",
    "update",
    "append",
    "compare_and_swap",
    "set_metadata",
    "set_expiry",
    "delete",
    "put_many",
)
#: The primitives whose second argument after ``ns`` is a batch (keys or items).
_BATCHES = frozenset({"get_many", "sizes", "delete", "put_many"})


def writes_inline(backend: SQLiteBackend) -> bool:
    """True if a commit on this store never fsyncs: WAL mode and not ``durable``."""
    if backend._durable:
        return False
    mode = backend._connection().execute("PRAGMA journal_mode").fetchone()[0]
    return str(mode).lower() == "wal"


def fast_path(backend: SQLiteBackend) -> FastPath:
    """The inline attempt of every primitive that may run on the loop's thread."""
    names = INLINE_READS + (INLINE_WRITES if writes_inline(backend) else ())
    return {name: _attempt(backend, name) for name in names}


def _attempt(backend: SQLiteBackend, name: str) -> Callable[..., Any]:
    fn = getattr(backend, name)

    def nowait() -> None:
        # First inline call on this thread (or after a reconnect): this
        # thread's connection stops waiting for locks. Connections are per
        # thread, so a store used from several event loops (threads) gets a
        # no-wait connection per loop thread, each used only on its thread.
        backend.enter_nowait()

    if name in _BATCHES:
        # (Batch writes count as one write for the checkpoint hand-over.)

        def batch(ns: str, keys: Sequence[Any], *args: Any) -> Any:
            if len(keys) > INLINE_BATCH:
                raise WouldBlock
            if not getattr(backend._local, "nowait", False):
                nowait()
            try:
                return fn(ns, keys, *args)
            except WouldBlock as exc:  # the backend's only one: SQLITE_BUSY
                raise Busy from exc

        return batch

    if name in INLINE_WRITES:
        writes = backend._inline_writes

        def write(*args: Any, **kwargs: Any) -> Any:
            if not getattr(backend._local, "nowait", False):
                nowait()
            writes[0] += 1
            if writes[0] % CHECKPOINT_EVERY == 0:
                # Lets the worker thread's connection, which checkpoints
                # (SQLite's autocheckpoint), commit this one write; see above.
                raise WouldBlock
            try:
                return fn(*args, **kwargs)
            except WouldBlock as exc:  # the backend's only one: SQLITE_BUSY
                raise Busy from exc

        return write

    def one(*args: Any, **kwargs: Any) -> Any:
        if not getattr(backend._local, "nowait", False):
            nowait()
        try:
            return fn(*args, **kwargs)
        except WouldBlock as exc:  # the backend's only one: SQLITE_BUSY
            raise Busy from exc

    return one
