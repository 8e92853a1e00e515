"""Export, import and migration loops over the async API (source of ``_transfer_sync.py``).

``tools/async_to_sync.py`` generates the sync twin by renaming; edit this file
and run ``make generate``. Everything streams in batches of ``batch_size``
records (one ``scan_records`` call to read, one ``put_records`` call to
write), so no store or file ever has to fit in memory. Records travel
encoded (tag and payload): nothing is decoded on the way, so every type,
custom codec tags and exact bytes survive.

What a copied record keeps: the value with its type, the absolute expiry and
the user metadata. Like any write, it gets ``created_at`` and ``updated_at``
of the moment it is written (``created_at`` is kept if the key is live in the
target) and version 1 (or the target's version + 1). Records that are expired
when read, or when written, are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._show import show
from .backends._base_async import AsyncBackend
from .codec import payload_size
from .errors import InvalidArgumentError, ValueTooLargeError
from .keys import check_namespace
from .patterns import compile_pattern
from .records import Record, Write
from .transfer import (
    Destination,
    ExportReader,
    Progress,
    Source,
    end_line,
    header_line,
    max_line_size,
    open_destination,
    record_line,
)

if TYPE_CHECKING:
    from ._store_async import AsyncStore

_ALL = compile_pattern("*")


# Every backend can take this as a LIMIT (SQLite, for one, cannot bind a larger int).
MAX_BATCH_SIZE = 2**31 - 1


def check_batch_size(batch_size: object) -> int:
    """A positive int batch size, at most MAX_BATCH_SIZE."""
    if type(batch_size) is not int or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InvalidArgumentError(
            f"batch_size must be a positive int up to {MAX_BATCH_SIZE}, got {show(batch_size)}"
        )
    return batch_size


async def _total(backend: AsyncBackend, spaces: list[str], now: int) -> int:
    total = 0
    for ns in spaces:
        total += await backend.count(ns, _ALL, now)
    return total


def _live_writes(rows: list[tuple[str, Record]], now: int) -> list[tuple[str, Write]]:
    return [
        (key, Write(r.tag, r.payload, r.expires_at, r.meta))
        for key, r in rows
        if r.expires_at is None or r.expires_at > now
    ]


async def export_store(
    store: AsyncStore,
    destination: Destination,
    *,
    all_namespaces: bool,
    progress: Progress | None,
    batch_size: int = 1000,
) -> int:
    """Write the store's namespace (or every namespace) to ``destination``."""
    backend = store.backend
    now = store._now()
    spaces = await backend.namespaces(now) if all_namespaces else [store.namespace_name]
    total = await _total(backend, spaces, now)
    if progress is not None:
        progress(0, total)
    done = 0
    line_limit = max_line_size(store._max_value_size)
    with open_destination(destination) as write:
        write(header_line(store.namespace_name, all_namespaces))
        for ns in spaces:
            after: str | None = None
            while True:
                rows = await backend.scan_records(ns, store._now(), after, batch_size)
                if rows:
                    lines = [record_line(ns, key, record) for key, record in rows]
                    for line, (key, _record) in zip(lines, rows, strict=True):
                        if len(line) > line_limit:
                            # Import could not read it back: only metadata far
                            # larger than max_value_size can make a line this long.
                            raise ValueTooLargeError(
                                f"Key {key!r} in namespace {ns!r} takes {len(line)} bytes as an "
                                f"export record, above the {line_limit} a record can take "
                                f"(12 x max_value_size + 64 KiB): its metadata is too large"
                            )
                    write(b"".join(lines))
                    done += len(rows)
                    if progress is not None:
                        progress(done, total)
                if len(rows) < batch_size:
                    break
                after = rows[-1][0]
        write(end_line(done))
    return done


async def import_store(
    store: AsyncStore,
    source: Source,
    *,
    progress: Progress | None,
    batch_size: int = 1000,
    opaque: bool = False,
) -> int:
    """Validate the whole export, then write it in batches; return records written.

    ``opaque``: accept records whose tag the store's codec cannot decode
    (pickles without the pickle codec, foreign custom tags), copied as they are.
    """
    backend = store.backend
    limit = store._max_value_size
    with ExportReader(source) as reader:
        total = reader.validate(store.namespace_name, store._codec, limit, opaque=opaque)
        if progress is not None:
            progress(0, total)
        done = 0
        written = 0
        batch: list[tuple[str, Write]] = []
        batch_ns = ""

        async def flush() -> None:
            nonlocal done, written, batch
            now = store._now()
            live = [(key, w) for key, w in batch if w.expires_at is None or w.expires_at > now]
            if live:
                await backend.put_records(batch_ns, live, now)
            written += len(live)
            done += len(batch)
            batch = []
            if progress is not None:
                progress(done, total)

        for line in reader.records_in(store.namespace_name, limit):
            if batch and (line.ns != batch_ns or len(batch) >= batch_size):
                await flush()
            batch_ns = line.ns
            batch.append((line.key, line.write))
        if batch:
            await flush()
    return written


async def copy_store(
    source: AsyncStore,
    target: AsyncStore,
    *,
    batch_size: int,
    namespaces: Iterable[str] | None,
    progress: Progress | None,
) -> int:
    """Copy namespaces from ``source`` to ``target``; return the keys copied."""
    batch_size = check_batch_size(batch_size)
    src, dst = source.backend, target.backend
    now = source._now()
    if namespaces is None:
        spaces = await src.namespaces(now)
    else:
        wanted = [namespaces] if isinstance(namespaces, str) else list(namespaces)
        spaces = list(dict.fromkeys(check_namespace(ns) for ns in wanted))
    total = await _total(src, spaces, now)
    if progress is not None:
        progress(0, total)
    limit = target._max_value_size
    done = 0
    copied = 0
    for ns in spaces:
        after: str | None = None
        while True:
            rows = await src.scan_records(ns, source._now(), after, batch_size)
            if rows:
                for key, record in rows:
                    if _too_large(record, limit):
                        raise ValueTooLargeError(
                            f"Value for key {key!r} in namespace {ns!r} is larger than the "
                            f"target's max_value_size {limit}; {copied} keys were copied"
                        )
                now = target._now()
                writes = _live_writes(rows, now)
                if writes:
                    await dst.put_records(ns, writes, now)
                copied += len(writes)
                done += len(rows)
                if progress is not None:
                    progress(done, total)
            if len(rows) < batch_size:
                break
            after = rows[-1][0]
    return copied


def _too_large(record: Record, limit: int) -> bool:
    return payload_size(record.tag, record.payload) > limit
