"""Checked multi-key commits: builder and transaction (source of ``_transactions_sync.py``).

``tools/async_to_sync.py`` generates the sync ``Atomic`` and ``Transaction``
from this file; edit this one and run ``make generate``. What to commit is
queued and validated by :class:`keyshelf.transactions.Mutations` (no I/O);
a commit is one call of the backend's :meth:`commit`, which applies every
mutation in one atomic step if every check holds (docs/coordination.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backends._cache_async import AsyncCachedBackend
from .entry import Entry
from .errors import InvalidArgumentError, TransactionConflictError
from .keys import check_key
from .records import Action, Record
from .transactions import CommitResult, Mutations, check_retries

if TYPE_CHECKING:
    from ._store_async import AsyncStore


class AsyncAtomic(Mutations):
    """``kv.atomic()``: checks and mutations applied together by :meth:`commit`, or not at all.

    Each of ``check``, ``set``, ``delete``, ``increment`` and ``expire``
    validates its arguments at once (bad keys, values or TTLs raise there) and
    returns the builder. A builder may be committed more than once; each
    commit applies the same checks and mutations again.
    """

    _store: AsyncStore

    def __init__(self, store: AsyncStore) -> None:
        super().__init__(store)

    async def commit(self) -> CommitResult:
        """Apply every mutation in one atomic step if every check holds.

        Returns ``CommitResult(ok, versions)``; a failed check is
        ``ok=False`` with nothing written (not an exception). Errors of the
        mutations themselves (an increment of a non-number, an overflow)
        raise, with nothing written. On a backend that cannot change several
        keys atomically raises :class:`UnsupportedOperationError`.
        """
        store = self._store
        ok, versions = await store._backend.commit(
            store._ns, dict(self._checks), list(self._ops), store._now()
        )
        return CommitResult(ok, versions)


class AsyncTransaction(Mutations):
    """The ``tx`` of ``kv.transaction(fn)``: reads remember versions, writes are queued.

    ``get``/``get_entry`` read the store, never a cache tier's copy (the
    first read of a key is remembered: reading it again gives the same answer) and add a check of
    the version read; ``set``, ``delete``, ``increment`` and ``expire`` queue
    mutations, applied when ``fn`` returns. Reads do not see the mutations
    queued before them.
    """

    _store: AsyncStore

    def __init__(self, store: AsyncStore) -> None:
        super().__init__(store)
        self._reads: dict[str, Record | None] = {}

    async def _read(self, key: str) -> Record | None:
        key = check_key(key)
        if key in self._reads:
            return self._reads[key]
        store = self._store
        backend = store._backend
        if isinstance(backend, AsyncCachedBackend):
            # Never a cached copy: a stale one would fail the commit's check
            # on every retry until the cache entry expired.
            backend = backend.inner
        record = await backend.get_record(store._ns, key, store._now())
        self._reads[key] = record
        self._add_check(key, None if record is None else record.version)
        return record

    async def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (``default`` if missing); the commit checks it is unchanged."""
        record = await self._read(key)
        if record is None:
            return default
        return self._store._codec.decode(record.tag, record.payload)

    async def get_entry(self, key: str) -> Entry | None:
        """The entry of ``key`` (None if missing); the commit checks it is unchanged."""
        record = await self._read(key)
        return None if record is None else Entry.from_record(key, record, self._store._codec)

    # Queued mutations return None in a transaction (the builder returns itself).
    def set(  # type: ignore[override]
        self, key: str, value: Any, ttl: Any = None, *, metadata: dict[str, Any] | None = None
    ) -> None:
        """Queue ``set(key, value, ttl, metadata=...)`` (the rules of ``set``)."""
        super().set(key, value, ttl, metadata=metadata)

    def delete(self, key: str) -> None:  # type: ignore[override]
        """Queue the deletion of ``key``."""
        super().delete(key)

    def increment(self, key: str, delta: int | float = 1) -> None:  # type: ignore[override]
        """Queue ``increment(key, delta)``."""
        super().increment(key, delta)

    def expire(self, key: str, ttl: Any) -> None:  # type: ignore[override]
        """Queue a TTL for ``key`` (a write: a new version)."""
        super().expire(key, ttl)

    async def _commit(self) -> bool:
        store = self._store
        if not self._ops and not self._checks:
            return True
        ok, _ = await store._backend.commit(store._ns, self._checks, self._ops, store._now())
        return ok


async def run_transaction(store: AsyncStore, fn: Callable[..., Any], retries: object) -> Any:
    """``kv.transaction(fn, retries=...)``: see :meth:`AsyncStore.transaction`."""
    attempts = check_retries(retries) + 1
    if not callable(fn):
        raise InvalidArgumentError(f"transaction() takes a function, not {type(fn).__name__}")
    backend = store._backend
    if not backend.multi_key_atomic:
        # Refused before fn runs (its side effects would be for nothing):
        # the backend's own update_many raises UnsupportedOperationError.
        await backend.update_many(store._ns, [], store._now(), _nothing)
    for _ in range(attempts):
        tx = AsyncTransaction(store)
        result = fn(tx)
        if True:  # ASYNC
            if not inspect.isawaitable(result):
                raise InvalidArgumentError(
                    "transaction() on an async store takes an `async def` function "
                    "(a plain function works with a store from keyshelf.open)"
                )
            result = await result
        else:
            _refuse_awaitable(result)
        if await tx._commit():
            return result
    raise TransactionConflictError(
        f"transaction(): the keys it read kept changing; gave up after {attempts} attempts "
        "(nothing of the last one was written)"
    )


def _nothing(records: dict[str, Record | None]) -> tuple[dict[str, Action], None]:
    return {}, None


if False:  # SYNC: only the sync twin refuses an awaitable

    def _refuse_awaitable(result: Any) -> None:
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: no RuntimeWarning
            raise InvalidArgumentError(
                "transaction() on a sync store takes a plain function; "
                "an `async def` one needs a store from keyshelf.open_async"
            )
