"""``DiskKVStore`` (kv-store-adapter): an SQLite file inside the given directory."""

from __future__ import annotations

import os
from typing import Any

from ...errors import BackendUnavailableError
from .._targets import sqlite_url
from ._store import KeyshelfKVStore

__all__ = ["DiskKVStore"]


class DiskKVStore(KeyshelfKVStore):
    """A persistent store in directory ``path`` (created if missing).

    The data lives in one keyshelf SQLite file, ``<path>/kv.db`` (not a
    directory per namespace of pickles as in the original package), so it is
    safe across threads and processes and survives restarts.
    """

    #: The file inside the directory.
    FILENAME = "kv.db"

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        directory = os.fspath(path)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(
                f"Cannot create the directory {directory!r}: {exc.strerror}"
            ) from exc
        self.path = directory
        super().__init__(sqlite_url(os.path.join(directory, self.FILENAME)), **options)
