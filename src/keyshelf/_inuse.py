"""The database files this process's SQLite stores hold, known by ``stat()`` alone.

SQLite coordinates processes with POSIX advisory locks, and POSIX drops
*every* lock a process holds on a file as soon as the process closes *any*
descriptor of that file. Code outside SQLite that merely opens and closes a
database file (or its ``-wal``, ``-shm`` or ``-journal``) while a store of
this process is connected to it silently releases that store's locks: another
process then believes it is the last connection and deletes the WAL, with
every transaction in it (SQLite's "How To Corrupt An SQLite Database File",
section 2.2).

So keyshelf never opens those files itself. The SQLite backend records the
identity (device, inode) of every database file it holds here, and the rest of
keyshelf (export, import, the JSON file backend) asks :func:`in_use` -- which
only calls ``stat()``, never ``open()`` -- before it opens a path, and refuses
a path that is such a file.
"""

from __future__ import annotations

import os
import threading

#: The files beside a database that SQLite opens and locks.
SIDECARS = ("-wal", "-shm", "-journal")

_Ident = tuple[int, int]

_guard = threading.Lock()
_held: dict[_Ident, int] = {}


def identity(path: str | os.PathLike[str]) -> _Ident | None:
    """(device, inode) of the file at ``path`` (following symlinks), or None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def hold(ident: _Ident) -> None:
    """Record that a store of this process is connected to the file ``ident``."""
    with _guard:
        _held[ident] = _held.get(ident, 0) + 1


def release(ident: _Ident) -> None:
    """Undo one :func:`hold`."""
    with _guard:
        left = _held.get(ident, 0) - 1
        if left > 0:
            _held[ident] = left
        else:
            _held.pop(ident, None)


def in_use(path: str | os.PathLike[str], *, sidecars_only: bool = False) -> bool:
    """True if ``path`` is a database file, or a sidecar of one, that a store holds.

    Opening and closing such a file would drop the store's locks (see the
    module documentation). ``sidecars_only``: only a ``-wal``, ``-shm`` or
    ``-journal`` counts (another SQLite connection to the database itself is
    safe: SQLite keeps the descriptors of one file in one process together).
    Only ``stat()`` is called.
    """
    with _guard:
        if not _held:
            return False
    name = os.fspath(path)
    if isinstance(name, bytes):  # pragma: no cover - keyshelf passes str paths
        name = os.fsdecode(name)
    candidates = [] if sidecars_only else [name]
    candidates += [name[: -len(s)] for s in SIDECARS if name.endswith(s)]
    for candidate in candidates:
        ident = identity(candidate)
        if ident is not None:
            with _guard:
                if ident in _held:
                    return True
    return False
