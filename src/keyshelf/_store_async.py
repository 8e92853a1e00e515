"""AsyncStore: every public method, written once (source of ``_store_sync.py``).

``tools/async_to_sync.py`` generates the sync :class:`Store` from this file by
renaming; edit this one and run ``make generate``. Each method validates and
encodes through :class:`StoreCore` (no I/O), makes one backend call, and
decodes the answer, so both APIs behave identically by construction.

Every method acts on the store's namespace only. Every method is atomic. An
expired key is invisible to every method. A rejected argument raises before
the backend is touched, so it never changes anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, cast

from ._acompat import ASweeper
from ._compute_async import get_or_set as _get_or_set
from ._compute_async import memoize as _memoize
from ._core import StoreCore, check_append, check_delta
from ._locks_async import AsyncLock
from ._transactions_async import AsyncAtomic, run_transaction
from ._transfer_async import check_batch_size, export_store, import_store
from ._watch_async import AsyncWatch
from .backends._base_async import AWAIT, AsyncBackend
from .compute import DEFAULT_LOCK_TTL
from .entry import Entry
from .errors import (
    InvalidArgumentError,
    KeyNotFoundError,
    KeysNotFoundError,
    SerializationError,
    UnsupportedOperationError,
)
from .expiry import now_ms
from .keys import check_key, check_keys, check_namespace
from .records import decide_delete_if, decide_expire_if, decide_getdel, decide_getset
from .transfer import Destination, Progress, Source

TTLArg = int | float | timedelta | None

# What get() answers for a missing key when kv[key] must tell it from a stored None.
_MISSING = object()


class AsyncStore(StoreCore[AsyncBackend]):
    """A keyshelf store bound to one namespace (``keyshelf.open_async``)."""

    def __init__(self, backend: AsyncBackend, **options: Any) -> None:
        super().__init__(backend, **options)
        self._sweeper: ASweeper | None = None
        # history= of open(): (count, ms) still to apply to the backend (the
        # async open does no I/O; the first feed call or ``async with`` does it).
        self._history: tuple[int | None, int | None] | None = None
        if self._cleanup_interval is not None:
            self._sweeper = ASweeper(self._sweep, self._cleanup_interval)
            self._sweeper.start()

    def _on_view(self) -> None:
        self._sweeper = None

    async def _sweep(self) -> int:
        return await self._backend.purge_expired(None, self._now())

    # -- lifecycle ------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the cleanup sweep and release the backend (views: no-op)."""
        if not self._owner:
            return
        if self._sweeper is not None:
            await self._sweeper.stop()
            self._sweeper = None
        await self._backend.close()

    async def __aenter__(self) -> AsyncStore:
        # A backend that connects lazily (open_async does no I/O) connects
        # now, so a server that cannot work is refused by the with statement.
        try:
            await self._backend.prepare()
            await self._apply_history()
        except BaseException:
            await self.aclose()
            raise
        if self._sweeper is not None:
            self._sweeper.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        return self.aiter_keys()

    if False:  # SYNC: an async store cannot offer kv[key], `in` or len()
        # The mapping protocol of the sync store, over its public methods.

        def __getitem__(self, key: str) -> Any:
            value = self.get(key, _MISSING)
            if value is _MISSING:
                raise KeyNotFoundError(f"Key not found: {key!r}")
            return value

        def __setitem__(self, key: str, value: Any) -> None:
            self.set(key, value)

        def __delitem__(self, key: str) -> None:
            if not self.delete(key):
                raise KeyNotFoundError(f"Key not found: {key!r}")

        def __contains__(self, key: object) -> bool:
            # A key that is not a str is refused by exists() like any bad key.
            return bool(self.exists(cast(str, key)))

        def __len__(self) -> int:
            return int(self.size())

    # -- the core operations of cinchdb's KV store -----------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if it is missing or expired."""
        # _now and _decode inlined: the hottest call of the API.
        if True:  # ASYNC
            # A backend whose reads never wait answers without a coroutine of
            # its own (AsyncBackend.get_now), unless the loop is due a turn.
            checked, now = check_key(key), now_ms(self._clock)
            inline = self._backend.get_now
            if inline is None or (value := inline(self._ns, checked, now)) is AWAIT:
                value = await self._backend.get(self._ns, checked, now)
        else:
            value = self._backend.get(self._ns, check_key(key), now_ms(self._clock))
        if value is None:
            return default
        try:
            return self._codec.decode(value[0], value[1])
        except SerializationError as exc:
            raise self._undecodable_value(key, exc) from exc

    async def set(
        self,
        key: str,
        value: Any,
        ttl: TTLArg = None,
        *,
        metadata: dict[str, Any] | None = None,
        nx: bool = False,
        xx: bool = False,
        keep_ttl: bool = False,
    ) -> bool:
        """Store ``value`` atomically; True if written.

        ``nx``: only if the key is absent; ``xx``: only if present (False when
        the condition stops it). A plain set replaces the TTL (none if ``ttl``
        is None) unless ``keep_ttl``. Without ``metadata`` the key keeps its
        user metadata; ``metadata={...}`` replaces it (a ``ttl`` entry in it
        sets the expiry when ``ttl`` is not given).
        """
        # Flags are truth values; backends bind them as SQL parameters, so pass
        # real bools (three bool() calls only when one is set: a plain set is hot).
        if nx or xx or keep_ttl:
            nx, xx, keep_ttl = bool(nx), bool(xx), bool(keep_ttl)
            if nx and xx:
                raise InvalidArgumentError("nx and xx cannot both be set")
        else:
            nx = xx = keep_ttl = False
        key, encoded, meta, now, expires = self._prepare_set(key, value, ttl, metadata, keep_ttl)
        return await self._backend.put(
            self._ns, key, encoded, expires, meta, now, nx=nx, xx=xx, keep_ttl=keep_ttl
        )

    async def delete(self, *keys: str) -> int:
        """Delete keys atomically; returns how many live keys were removed."""
        return len(await self._backend.delete(self._ns, check_keys(keys), self._now()))

    async def getdel(self, key: str) -> Any:
        """Get the value of ``key`` and delete the key, atomically; None if missing.

        One operation (Redis's GETDEL): of several concurrent ``getdel`` calls
        on one key, exactly one gets its value. An expired key is missing.
        """
        result = await self._backend.update(self._ns, check_key(key), self._now(), decide_getdel)
        return None if result is None else self._decode(result, key)

    async def getset(self, key: str, value: Any, ttl: TTLArg = None) -> Any:
        """Store ``value`` and return the old value (None if missing), atomically.

        Otherwise a plain ``set``: the TTL is replaced (none if ``ttl`` is
        None) and the key keeps its user metadata.
        """
        key, encoded, _, now, expires = self._prepare_set(key, value, ttl, None, False)
        old = await self._backend.update(self._ns, key, now, decide_getset(encoded, expires))
        return None if old is None else self._decode(old, key)

    async def delete_if(self, key: str, value: Any) -> bool:
        """Delete ``key`` only if its value equals ``value`` (typed, as ``compare_and_swap``).

        One atomic operation; True if it deleted. A missing key never matches.
        """
        check_key(key)
        expected = self._codec.encode(value)
        return await self._backend.update(self._ns, key, self._now(), decide_delete_if(expected))

    async def expire_if(self, key: str, value: Any, ttl: int | float | timedelta) -> bool:
        """Set the TTL of ``key`` only if its value equals ``value`` (typed); True if set.

        One atomic operation. Unlike ``expire``, it is decided on the value,
        so the key gets a new version when it is set.
        """
        check_key(key)
        expected = self._codec.encode(value)
        now, expires = self._times(ttl)
        if expires is None:
            raise InvalidArgumentError("expire_if needs a TTL; use persist() to remove one")
        decide = decide_expire_if(expected, expires)
        return await self._backend.update(self._ns, key, now, decide)

    async def exists(self, key: str) -> bool:
        """True if ``key`` holds a live value (which may be ``None``)."""
        return await self._backend.exists(self._ns, check_key(key), self._now())

    async def mset(self, mapping: Mapping[str, Any], ttl: TTLArg = None) -> bool:
        """Set every pair in one transaction (all or nothing), with one shared TTL."""
        items, now, expires = self._batch(mapping, ttl)
        if items:
            await self._backend.put_many(self._ns, items, expires, now)
        return True

    async def mget(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of all ``keys``; raises KeysNotFoundError if any is missing."""
        wanted = check_keys(keys)
        found = await self._backend.get_many(self._ns, wanted, self._now())
        missing = [key for key in dict.fromkeys(wanted) if key not in found]
        if missing:
            raise KeysNotFoundError(missing)
        return {key: self._decode(found[key], key) for key in wanted}

    async def increment(self, key: str, delta: int | float = 1) -> int | float:
        """Atomically add ``delta``; a missing key starts at 0 with no TTL.

        Keeps the key's TTL. Raises NotNumericError for non-numbers (``bool``
        included) and IncrementOverflowError beyond the signed 64-bit range.
        """
        check_key(key)
        return await self._backend.increment(self._ns, key, check_delta(delta), self._now())

    async def decrement(self, key: str, delta: int | float = 1) -> int | float:
        """Atomically subtract ``delta`` (see :meth:`increment`)."""
        check_key(key)
        return await self._backend.increment(self._ns, key, -check_delta(delta), self._now())

    async def keys(self, pattern: str | None = None) -> list[str]:
        """Live keys matching ``pattern``, sorted by code point.

        Without a pattern: every live key of the namespace, whatever the
        dialect (with a separator, ``"*"`` is only the top-level segment).
        """
        rows = await self._backend.scan(
            self._ns, self._listing(pattern), self._now(), None, None, False
        )
        return [key for key, _ in rows]

    async def aiter_keys(
        self, pattern: str | None = None, *, batch_size: int = 1000
    ) -> AsyncIterator[str]:
        """Stream matching keys (every live key without a pattern) in order.

        Each backend call returns ``batch_size`` keys and resumes strictly
        after the last key returned (an index seek on the ordered backends),
        so a whole stream reads each key once: linear in the keys listed.
        """
        matcher = self._listing(pattern)
        batch_size = check_batch_size(batch_size)
        after: str | None = None
        while True:
            rows = await self._backend.scan(
                self._ns, matcher, self._now(), after, batch_size, False
            )
            for key, _ in rows:
                yield key
            if len(rows) < batch_size:
                return
            after = rows[-1][0]

    async def aiter_items(
        self, pattern: str | None = None, *, batch_size: int = 1000
    ) -> AsyncIterator[tuple[str, Any]]:
        """Stream matching (key, value) pairs (every live key without a pattern) in key order.

        Pages like :meth:`aiter_keys`: linear in the keys listed.
        """
        matcher = self._listing(pattern)
        batch_size = check_batch_size(batch_size)
        after: str | None = None
        while True:
            rows = await self._backend.scan(self._ns, matcher, self._now(), after, batch_size, True)
            for key, value in rows:
                assert value is not None
                try:
                    decoded = self._codec.decode(value[0], value[1])
                except SerializationError as exc:
                    # Another key's undecodable value never ends the listing.
                    self._undecodable(key, value[0], exc)
                    continue
                yield key, decoded
            if len(rows) < batch_size:
                return
            after = rows[-1][0]

    async def key_count(self, pattern: str | None = None) -> int:
        """Number of live keys matching ``pattern``; without one, every live key.

        ``key_count() == size() == len(keys())`` in both dialects.
        """
        return await self._backend.count(self._ns, self._listing(pattern), self._now())

    async def ttl(self, key: str) -> float | None:
        """Remaining seconds; None for a key without expiry; -1 if missing or expired."""
        # One clock reading for the lookup and the subtraction: the answer is
        # then at most the TTL given (a later reading only makes it smaller).
        # Server backends answer from the clock that expires the key.
        left = await self._backend.time_left(self._ns, check_key(key), self._now())
        if left is None:
            return None
        return -1 if left < 0 else left / 1000

    async def expire(self, key: str, ttl: int | float | timedelta) -> bool:
        """Set the TTL of a live key; True if the key exists."""
        check_key(key)
        now, expires = self._times(ttl)
        if expires is None:
            raise InvalidArgumentError("expire needs a TTL; use persist() to remove one")
        return await self._backend.set_expiry(self._ns, key, expires, now)

    async def persist(self, key: str) -> bool:
        """Remove the TTL of a live key; True if a TTL was removed."""
        return await self._backend.set_expiry(self._ns, check_key(key), None, self._now())

    async def setnx(self, key: str, value: Any, ttl: TTLArg = None) -> bool:
        """Set only if absent, atomically; True if it set (a lock primitive)."""
        return await self.set(key, value, ttl, nx=True)

    def lock(
        self,
        name: str,
        ttl: int | float | timedelta,
        *,
        blocking: bool = True,
        timeout: float | None = None,
    ) -> AsyncLock:
        """A lock on ``name`` with a lease of ``ttl`` seconds and a fencing token.

        No I/O here: ``with kv.lock(name, ttl) as lock:`` (``async with`` on
        the async store) or ``lock.acquire()`` takes it. The lock is the key
        ``name`` of the namespace ``<this namespace>:locks`` (docs/coordination.md).
        """
        return AsyncLock(self, name, ttl, blocking=blocking, timeout=timeout)

    def atomic(self) -> AsyncAtomic:
        """A builder of one checked, atomic multi-key commit (docs/coordination.md).

        ``kv.atomic().check(key, version).set(...).delete(...).commit()``:
        ``commit()`` applies every mutation in one atomic step if each
        checked key still has the version given (None: absent), and returns
        a result with ``.ok`` and ``.versions``. No I/O until ``commit``.
        """
        return AsyncAtomic(self)

    async def transaction(self, fn: Callable[..., Any], *, retries: int = 10) -> Any:
        """Run ``fn(tx)`` and commit its mutations if nothing it read has changed.

        ``tx.get``/``tx.get_entry`` read (and remember the versions read);
        ``tx.set/delete/increment/expire`` queue mutations, committed when
        ``fn`` returns, with a check on every key read. On a conflict ``fn``
        runs again, up to ``retries`` more times, then
        :class:`TransactionConflictError`. Returns what ``fn`` returned. On the
        async store ``fn`` is an ``async def`` function.
        """
        return await run_transaction(self, fn, retries)

    async def storage_size(self, *keys: str) -> dict[str, int]:
        """``{"total": bytes}`` for the namespace, or ``{key: bytes}`` for live keys."""
        if not keys:
            return {"total": await self._backend.total_size(self._ns, self._now())}
        return await self._backend.sizes(self._ns, check_keys(keys), self._now())

    async def delete_expired(self) -> int:
        """Remove this namespace's expired keys; returns how many."""
        return await self._backend.purge_expired(self._ns, self._now())

    async def cleanup_expired(self) -> int:
        """Same as :meth:`delete_expired` (dataknobs-kv's name)."""
        return await self.delete_expired()

    # -- dataknobs-kv: hierarchy, metadata, atomics --------------------------------

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of the live keys among ``keys``; missing ones left out."""
        wanted = check_keys(keys)
        found = await self._backend.get_many(self._ns, wanted, self._now())
        return {key: self._decode(found[key], key) for key in wanted if key in found}

    async def set_many(self, mapping: Mapping[str, Any], ttl: TTLArg = None) -> dict[str, bool]:
        """Set every pair atomically; ``{key: True}`` for each."""
        await self.mset(mapping, ttl)
        return dict.fromkeys(mapping, True)

    async def delete_many(self, keys: Iterable[str]) -> dict[str, bool]:
        """Delete keys atomically; True where a live key was removed."""
        wanted = check_keys(keys)
        removed = set(await self._backend.delete(self._ns, wanted, self._now()))
        return {key: key in removed for key in wanted}

    async def get_pattern(self, pattern: str) -> dict[str, Any]:
        """Live keys matching ``pattern`` with their values, in key order."""
        rows = await self._backend.scan(
            self._ns, self._matcher(pattern), self._now(), None, None, True
        )
        return self._decode_listed(rows)

    async def delete_pattern(self, pattern: str) -> int:
        """Delete every key matching ``pattern`` atomically; count the live ones."""
        return await self._backend.delete_matching(self._ns, self._matcher(pattern), self._now())

    async def compare_and_swap(self, key: str, old_value: Any, new_value: Any) -> bool:
        """Replace the value if it equals ``old_value`` with the same type; keeps the TTL.

        Equality is on the typed encoding: ``1``, ``1.0`` and ``True`` all
        differ, and dicts must list their keys in the same order. A missing key
        never matches.
        """
        check_key(key)
        expected = self._codec.encode(old_value)
        new = self._encode(key, new_value)
        return await self._backend.compare_and_swap(self._ns, key, expected, new, self._now())

    async def append(self, key: str, value: str | bytes) -> str | bytes:
        """Append str to str or bytes to bytes atomically; returns the new value."""
        check_key(key)
        encoded = self._encode(key, check_append(value))
        result = await self._backend.append(
            self._ns, key, encoded, self._now(), self._max_value_size
        )
        return self._decode(result, key)  # type: ignore[no-any-return]

    async def get_metadata(self, key: str) -> dict[str, Any] | None:
        """The user metadata of ``key`` (``{}`` if none); None if missing."""
        record = await self._backend.get_record(self._ns, check_key(key), self._now())
        return None if record is None else self._codec.decode_metadata(record.meta)

    async def set_metadata(
        self, key: str, metadata: dict[str, Any], *, replace: bool = False
    ) -> bool:
        """Merge into (or with ``replace``, replace) the user metadata; False if missing.

        A ``ttl`` entry sets the key's expiry instead of being stored.
        """
        check_key(key)
        user, ttl = self._metadata(metadata)
        merge = self._merge_metadata(user, replace)
        now, expires = self._times(ttl)
        if expires is None:
            return await self._backend.set_metadata(self._ns, key, merge, now)
        return await self._backend.set_metadata(self._ns, key, merge, now, expires_at=expires)

    async def get_entry(self, key: str) -> Entry | None:
        """The value with user and system metadata, or None if missing."""
        record = await self._backend.get_record(self._ns, check_key(key), self._now())
        return None if record is None else Entry.from_record(key, record, self._codec)

    # -- computing a missing value once (docs/caching.md) ---------------------------

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        ttl: TTLArg = None,
        *,
        lock_ttl: int | float | timedelta = DEFAULT_LOCK_TTL,
        stale_ttl: TTLArg = None,
    ) -> Any:
        """The value of ``key``; on a miss, ``factory()`` runs once and its result is stored.

        Of all callers missing the key at once (threads, tasks, processes),
        exactly one runs ``factory`` (the owner of the lease
        ``keyshelf-lease:<key>``, held at most ``lock_ttl`` seconds); the
        others wait, without spinning, and return what it stored. If the
        factory raises, the error reaches its caller only, nothing is stored
        and one waiter takes over; if the owner is slower than ``lock_ttl``,
        one waiter takes over. A stored ``None`` is a hit. With ``stale_ttl``
        the value is kept ``ttl + stale_ttl`` seconds: past ``ttl`` it is
        served stale while one caller refreshes it. ``factory`` may return an
        awaitable (a coroutine function) on the async store. The key's user
        metadata is replaced (by the freshness mark with ``stale_ttl``).
        """
        return await _get_or_set(self, key, factory, ttl, lock_ttl=lock_ttl, stale_ttl=stale_ttl)

    def memoize(
        self,
        ttl: TTLArg = None,
        *,
        key: Callable[..., str] | None = None,
        typed: bool = False,
        lock: bool = True,
        stale_ttl: TTLArg = None,
        lock_ttl: int | float | timedelta = DEFAULT_LOCK_TTL,
    ) -> Callable[[Callable[..., Any]], Any]:
        """Decorate a function so its results are cached in this store (``get_or_set`` per call).

        The cache key is ``memoize:<module>.<qualname>:`` and a SHA-256 of
        the typed encoding of the arguments, the same in every process and
        run; ``typed=True`` tells ``1``, ``1.0`` and ``True`` apart; ``key``
        (a callable of the same arguments returning a str) replaces it.
        Arguments that cannot be encoded raise :class:`SerializationError` at
        call time. ``lock=False`` skips the stampede protection; ``lock_ttl``
        bounds how long the other callers wait for the one computing (as in
        :meth:`get_or_set`). The wrapper has ``.invalidate(*args, **kwargs)``
        and ``.cache_key(*args, **kwargs)``.
        """
        return _memoize(
            self, ttl, key=key, typed=typed, lock=lock, stale_ttl=stale_ttl, lock_ttl=lock_ttl
        )

    # -- VintLang kv and kv-store-adapter: whole-namespace views -------------------

    async def values(self) -> list[Any]:
        """Every live value, in key order (whatever the dialect)."""
        return list((await self.dump()).values())

    async def size(self) -> int:
        """Number of live keys in the namespace."""
        return await self._backend.count(self._ns, self._all, self._now())

    async def is_empty(self) -> bool:
        """True if the namespace holds no live key."""
        rows = await self._backend.scan(self._ns, self._all, self._now(), None, 1, False)
        return not rows

    async def clear(self) -> int:
        """Delete every key of the namespace; returns how many were live."""
        return await self._backend.delete_matching(self._ns, self._all, self._now())

    async def dump(self) -> dict[str, Any]:
        """Every live key with its value, in key order (whatever the dialect)."""
        rows = await self._backend.scan(self._ns, self._all, self._now(), None, None, True)
        return self._decode_listed(rows)

    async def stats(self) -> dict[str, Any]:
        """``total_keys`` (expired but unpurged included), ``active_keys``,
        ``expired_keys`` and ``keys_with_ttl`` for this namespace; ``evictions``
        (records a bounded store evicted, all namespaces together; 0 where
        nothing evicts) and, on a bounded store, ``max_keys`` / ``max_bytes``."""
        stats = await self._backend.stats(self._ns, self._now())
        if "evictions" not in stats:
            stats["evictions"] = 0
        return stats

    async def list_namespaces(self) -> list[str]:
        """Sorted names of every namespace of the store holding a live key."""
        return await self._backend.namespaces(self._now())

    async def clear_namespace(self, name: str) -> int:
        """Delete every key of namespace ``name``; returns how many were live."""
        return await self._backend.delete_matching(check_namespace(name), self._all, self._now())

    # -- export and import (docs/transfer.md) ---------------------------------------

    async def export(
        self,
        destination: Destination,
        *,
        all_namespaces: bool = False,
        progress: Progress | None = None,
        batch_size: int = 1000,
    ) -> int:
        """Write this namespace (or every namespace) as line-oriented JSON; count the records.

        ``destination`` is a path (``.gz``: gzip) or a binary or text stream.
        Every live record keeps its type (as the codec's tag and payload), its
        absolute expiry and its user metadata; expired keys are skipped. A
        path is written to a temporary file and renamed into place when
        complete, so a failed export leaves nothing behind. The export streams
        ``batch_size`` records at a time; each batch is read atomically, but
        the export is not one snapshot: keys changed while it runs may appear
        with their old or new value. ``progress(done, total)`` is called after
        each batch. The format is specified in docs/transfer.md.
        """
        return await export_store(
            self,
            destination,
            all_namespaces=bool(all_namespaces),
            progress=progress,
            batch_size=check_batch_size(batch_size),
        )

    async def import_(
        self,
        source: Source,
        *,
        progress: Progress | None = None,
        batch_size: int = 1000,
        opaque: bool = False,
    ) -> int:
        """Load an export written by :meth:`export`; return how many records were written.

        ``source`` is a path (gzip is detected) or a binary or text stream.
        Records of a one-namespace export go into this store's namespace;
        those of an ``all_namespaces`` export into the namespaces they came
        from. Each record replaces the key's value, expiry and user metadata
        (like ``set``); records already expired are skipped.

        All or nothing against bad input: the whole source is validated first
        (JSON, header, keys, types, payloads, sizes, the end line that counts
        the records), and a corrupt or truncated line raises
        :class:`ExportFormatError` naming the line, with nothing written. Only
        then is it written, ``batch_size`` records per backend call; if the
        backend fails part-way, the records before the failing batch stay
        written (in file order) and importing again completes the job.

        A record whose value this store's codec cannot decode (a pickle
        without ``codec="pickle"``, a custom codec's tag) is refused like a
        corrupt one, unless ``opaque=True``: then it is copied as it is,
        never decoded, and listings of the namespace leave it out (with an
        :class:`UndecodableValueWarning`) while ``get`` of it raises
        :class:`SerializationError`. A line longer than any record can be
        (12 x ``max_value_size`` + 64 KiB) is refused before it is all read.
        """
        return await import_store(
            self,
            source,
            progress=progress,
            batch_size=check_batch_size(batch_size),
            opaque=bool(opaque),
        )

    # -- change feed (docs/changes.md) ------------------------------------------

    async def _apply_history(self) -> None:
        """Apply the ``history=`` option of open() (switches the feed on)."""
        if self._history is not None:
            count, ms = self._history
            await self._backend.enable_changes(count, ms)
            self._history = None

    async def _feed_revision(self) -> int:
        """The store's revision, refusing a store whose change feed is off."""
        await self._apply_history()
        if not await self._backend.changes_enabled():
            raise UnsupportedOperationError(
                f"The change feed of {self._backend.location or 'this store'} is off: "
                "open the store once with history= (a count of changes or a duration, "
                "e.g. history=10000 or history='1d') to switch it on for every writer"
            )
        return await self._backend.revision(self._now(), ns=self._ns)

    async def revision(self) -> int:
        """The latest revision of the store's change feed (0 when nothing was recorded).

        Store-wide (every namespace shares it; on Redis Cluster revisions are
        per namespace: this namespace's). Raises UnsupportedOperationError on
        a backend without a change feed; 0 while the feed is off.
        """
        await self._apply_history()
        return await self._backend.revision(self._now(), ns=self._ns)

    def watch(
        self, pattern: str | None = None, *, since: int | None = None, prev: bool = False
    ) -> AsyncWatch:
        """Follow the changes of this namespace's keys matching ``pattern``.

        Returns an iterator (async iterator: ``async for``) of
        :class:`~keyshelf.changes.ChangeEvent`, in revision order, each
        change once. ``since=None`` follows from now (the async watch: from
        its first step or ``async with``); ``since=N`` first replays every
        recorded change with a revision above ``N``, then follows live, with
        no gap and no duplicate between the two. ``prev=True`` fills
        ``.prev`` with the value before each change. The watch ends when
        closed (``close()``, a ``with`` block, leaving the loop of a
        generator that closes it) or when the store is closed.

        Raises :class:`~keyshelf.errors.ChangesCompactedError` when changes
        after ``since`` were pruned from the history, and
        UnsupportedOperationError when the store's feed is off (open it with
        ``history=``) or the backend has none. docs/changes.md has the details.
        """
        matcher = None if pattern is None else self._matcher(pattern)
        if since is not None and (type(since) is not int or since < 0):
            raise InvalidArgumentError(f"since must be a revision (an int >= 0), got {since!r}")
        watch = AsyncWatch(self, matcher, since, bool(prev))
        if False:  # SYNC
            watch._start()  # a sync watch from now starts at the call
        return watch
