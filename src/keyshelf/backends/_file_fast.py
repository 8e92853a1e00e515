"""Which file-backend primitives the async store runs inline on the event loop's thread.

The file backend holds the whole store in memory and reloads it when another
writer replaced the file. A read is a dictionary lookup when the document in
memory is current, so it runs inline when two cheap checks pass, and goes to
the worker thread otherwise (raising :class:`WouldBlock` before doing
anything):

* the store's thread lock is free (``acquire(blocking=False)``): a worker
  thread may be in the middle of a write, which holds it across the file
  lock wait, the save and its fsyncs;
* the file's identity (device, inode, size, mtime, one ``stat``) is the one
  loaded: otherwise the read would reload and parse the file first.

Inline: ``get``, ``get_record``, ``exists``, ``time_left``, and ``get_many``
/ ``sizes`` of at most :data:`INLINE_BATCH` keys. Every write (it takes the
inter-process lock and rewrites the file), every scan and count, and every
bigger batch runs in the worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._fastpath import FastPath, WouldBlock

if TYPE_CHECKING:
    from .file import FileBackend

#: The most keys a batch read may name to run inline.
INLINE_BATCH = 64

INLINE_READS = ("get", "get_record", "exists", "time_left", "get_many", "sizes")
_BATCHES = frozenset({"get_many", "sizes"})


def _current(backend: FileBackend) -> bool:
    """True if the document in memory is the file's (a read would not reload)."""
    try:
        st = os.stat(backend.path)
    except FileNotFoundError:
        return backend._ident is None and not backend._data
    except OSError:
        return False  # the worker thread reports it
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == backend._ident


def fast_path(backend: FileBackend) -> FastPath:
    """The inline attempt of every read that may run on the loop's thread."""
    return {name: _attempt(backend, name) for name in INLINE_READS}


def _attempt(backend: FileBackend, name: str) -> Callable[..., Any]:
    fn = getattr(backend, name)
    lock = backend._lock
    batch = name in _BATCHES

    def attempt(ns: str, key_or_keys: Any, now: int) -> Any:
        if batch and len(key_or_keys) > INLINE_BATCH:
            raise WouldBlock
        if not lock.acquire(blocking=False):
            raise WouldBlock
        try:
            if not _current(backend):
                raise WouldBlock
            return fn(ns, key_or_keys, now)  # takes the (reentrant) lock again
        finally:
            lock.release()

    return attempt
