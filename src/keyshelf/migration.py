"""``migrate`` / ``migrate_async``: copy stores between backends (docs/transfer.md).

dataknobs-kv's ``migrate_store(source, target, batch_size=100)``, for any pair of
backends. The copy streams: one ``scan_records`` call reads ``batch_size``
records of the source, one ``put_records`` call writes them to the target,
so a store of millions of keys never has to fit in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from . import _transfer_async, _transfer_sync
from ._open import open, open_async
from ._store_async import AsyncStore
from ._store_sync import Store
from ._transfer_async import check_batch_size
from .errors import InvalidArgumentError
from .transfer import Progress

StoreOrURL = Store | str | os.PathLike[str]
AsyncStoreOrURL = AsyncStore | str | os.PathLike[str]


def migrate(
    source: StoreOrURL,
    target: StoreOrURL,
    *,
    batch_size: int = 1000,
    namespaces: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """Copy every namespace (or those in ``namespaces``) from ``source`` to ``target``.

    ``source`` and ``target`` are stores or URLs (a URL is opened with
    :func:`keyshelf.open` and closed afterwards). Each live key is copied into
    the namespace of the same name with its value and type, its remaining TTL
    as the same absolute expiry, and its user metadata; keys that exist in
    the target are overwritten, others are left alone. ``created_at``,
    ``updated_at`` and ``version`` are those of a fresh write on the target
    (``created_at`` is kept for a key already live there). Keys expired
    before they are written are skipped.

    Streams ``batch_size`` keys per backend call. Each batch is read in one
    call and written in one call (atomically on the memory, SQLite, file and
    PostgreSQL backends); the migration as a whole is not atomic and not a snapshot: if
    it fails part-way, the batches before the failure stay copied, and
    running it again completes it. ``progress(done, total)`` is called with
    ``(0, total)`` first and after each batch (``total`` counts the live keys
    when it started). Values are copied encoded, so a store written with a
    custom codec must be read with it on the target too. A value larger than
    the target's ``max_value_size`` stops the migration with
    :class:`ValueTooLargeError`.

    Returns the number of keys copied.
    """
    check_batch_size(batch_size)
    src, close_src = _open_sync(source, "source")
    try:
        dst, close_dst = _open_sync(target, "target")
        try:
            return _transfer_sync.copy_store(
                src, dst, batch_size=batch_size, namespaces=namespaces, progress=progress
            )
        finally:
            if close_dst:
                dst.close()
    finally:
        if close_src:
            src.close()


async def migrate_async(
    source: AsyncStoreOrURL,
    target: AsyncStoreOrURL,
    *,
    batch_size: int = 1000,
    namespaces: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """:func:`migrate` for async stores (URLs are opened with :func:`keyshelf.open_async`)."""
    check_batch_size(batch_size)
    src, close_src = _open_async(source, "source")
    try:
        dst, close_dst = _open_async(target, "target")
        try:
            return await _transfer_async.copy_store(
                src, dst, batch_size=batch_size, namespaces=namespaces, progress=progress
            )
        finally:
            if close_dst:
                await dst.aclose()
    finally:
        if close_src:
            await src.aclose()


def _open_sync(store: Any, role: str) -> tuple[Store, bool]:
    if isinstance(store, Store):
        return store, False
    if isinstance(store, str | os.PathLike):
        return open(store), True
    raise InvalidArgumentError(
        f"migrate {role} must be a keyshelf.Store or a URL, not {type(store).__name__}"
    )


def _open_async(store: Any, role: str) -> tuple[AsyncStore, bool]:
    if isinstance(store, AsyncStore):
        return store, False
    if isinstance(store, str | os.PathLike):
        return open_async(store), True
    raise InvalidArgumentError(
        f"migrate_async {role} must be a keyshelf.AsyncStore or a URL, not {type(store).__name__}"
    )
