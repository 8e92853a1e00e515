"""AsyncLock: a lock with a lease and a fencing token (source of ``_locks_sync.py``).

``tools/async_to_sync.py`` generates the sync ``Lock`` from this file; edit
this one and run ``make generate``. The record and every decision are in
:mod:`keyshelf.locks`; this class only reads the record and writes it back
with the store's own atomic operations (``setnx`` and ``compare_and_swap``),
so a lock behaves alike on every backend (docs/coordination.md).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .backends._cache_async import AsyncCachedBackend
from .errors import KVError, LockNotAcquiredError, LockNotOwnedError
from .locks import (
    FIRST_DELAY,
    LockState,
    check_lock_args,
    check_lock_ttl,
    claim,
    hints,
    lock_namespace,
    lock_view,
    next_delay,
    parse,
    pause,
    record,
)

if TYPE_CHECKING:
    from ._store_async import AsyncStore


class AsyncLock:
    """A lease on the name ``name``, held by at most one owner at a time.

    Made by ``store.lock(name, ttl, blocking=..., timeout=...)``, which does
    no I/O; ``acquire`` (or entering the ``with`` block) takes it. While it
    is held, ``fencing_token`` is the number of this acquisition: strictly
    larger than that of every earlier acquisition of the same name, by any
    process. ``extend`` and ``release`` act only while this acquisition still
    holds a live lease, else raise :class:`LockNotOwnedError`. One lock
    object is one would-be owner: do not share it between threads or tasks.
    """

    def __init__(
        self,
        store: AsyncStore,
        name: str,
        ttl: Any,
        *,
        blocking: bool = True,
        timeout: float | None = None,
    ) -> None:
        self.name, self._ttl_ms, self._blocking, self._timeout = check_lock_args(
            name, ttl, blocking, timeout
        )
        self.namespace = lock_namespace(store.namespace_name)
        self._store = lock_view(store, self.namespace)
        self._owner: str | None = None
        self._token: int | None = None
        # The record this object last wrote (exactly as stored), while it holds the lock.
        self._written: dict[str, Any] | None = None

    @property
    def fencing_token(self) -> int:
        """The fencing token of the latest acquisition by this object.

        Pass it along with every write the lock guards, and let the target
        refuse a write whose token is lower than one it has seen. Raises
        :class:`LockNotOwnedError` if this object has never acquired the lock.
        """
        if self._token is None:
            raise LockNotOwnedError(f"Lock {self.name!r} has not been acquired by this object")
        return self._token

    async def _read(self, now: int) -> tuple[Any, LockState | None]:
        """The stored record (as decoded) and its state, read from the backend itself.

        Never from the cache tier: a cached copy could still show a released
        lock as held, and a waiter would then wait for its lease to end.
        """
        store = self._store
        backend = store._backend
        if isinstance(backend, AsyncCachedBackend):
            backend = backend.inner
        found = await backend.get(store._ns, self.name, now)
        if found is None:
            return None, None
        value = store._decode(found, self.name)
        return value, parse(value, self.name, self.namespace)

    async def acquire(self) -> AsyncLock:
        """Take the lock; returns this lock.

        Waits while another owner holds a live lease (``blocking=True``),
        sleeping with capped exponential backoff and jitter, at most
        ``timeout`` seconds if one was given; then, or at once with
        ``blocking=False``, raises :class:`LockNotAcquiredError`. A lock whose
        holder released it or whose lease has ended (by this store's clock) is
        taken over with the next fencing token.
        """
        if self._owner is not None:
            raise LockNotAcquiredError(
                f"Lock {self.name!r} is already held by this object; release it first"
            )
        owner = secrets.token_hex(16)
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        delay = FIRST_DELAY
        store = self._store
        # The free record this process last wrote, if any: swapped from without a read.
        value = hints.take(store._backend, self.namespace, self.name)
        state: LockState | None
        while True:
            now = store._now()
            if value is not None:
                state = parse(value, self.name, self.namespace)
            else:
                value, state = await self._read(now)
            new = claim(state, owner, now, self._ttl_ms)
            if new is not None:
                if state is None:
                    won = await store.setnx(self.name, new)
                else:
                    won = await store.compare_and_swap(self.name, value, new)
                if won:
                    self._owner, self._token, self._written = owner, new["fencing_token"], new
                    return self
                # Another owner changed the record first (or the hint was
                # stale): read it again at once.
                value = None
                continue
            time_left = None if deadline is None else deadline - time.monotonic()
            if not self._blocking or (time_left is not None and time_left <= 0):
                raise LockNotAcquiredError(
                    f"Lock {self.name!r} is held by another owner"
                    + ("" if time_left is None else f" (gave up after {self._timeout} s)")
                )
            # Held: claim() found an owner with a deadline still ahead.
            until = None if state is None else state.lease_until
            lease_left = -1 if until is None else until - now
            seconds = pause(delay, lease_left, time_left)
            if True:  # ASYNC
                await asyncio.sleep(seconds)
            else:
                time.sleep(seconds)
            delay = next_delay(delay)
            value = None

    async def extend(self, ttl: Any = None) -> None:
        """Make the lease end ``ttl`` seconds from now (default: the lock's TTL).

        Only while this acquisition still holds a live lease; otherwise
        (released, lease ended, taken over) raises :class:`LockNotOwnedError`
        and changes nothing. The fencing token stays the same.
        """
        ttl_ms = self._ttl_ms if ttl is None else check_lock_ttl(ttl)
        owner, token = self._held()
        now = self._store._now()
        new = record(owner, token, now + ttl_ms)
        if await self._swap(now, new, "extend"):
            self._written = new

    async def _swap(self, now: int, new: dict[str, Any], action: str) -> bool:
        """Replace this owner's record by ``new`` while it holds a live lease; True when done.

        First from the record this object wrote, without reading (one
        operation: the common case); if that no longer matches, or the lease
        has ended by this store's clock, the stored record is read and
        decides: still ours (rewritten by a racing call on this object), or
        no longer held (:class:`LockNotOwnedError`, nothing changed).
        """
        owner, token = self._held()
        store = self._store
        written = self._written
        if (
            written is not None
            and written["lease_until"] is not None
            and now < written["lease_until"]
            and await store.compare_and_swap(self.name, written, new)
        ):
            return True
        while True:
            value, state = await self._read(now)
            if state is None or not state.held_by(owner, token, now):
                raise self._lost(action)
            if await store.compare_and_swap(self.name, value, new):
                return True
            now = store._now()

    async def release(self) -> None:
        """Give the lock up; the next acquisition gets the next fencing token.

        Only while this acquisition still holds a live lease; otherwise
        (released, lease ended, taken over) raises :class:`LockNotOwnedError`
        and changes nothing, so a lock another owner holds is never released.
        The key stays, with no owner, so the fencing counter survives.
        """
        _, token = self._held()
        released = record(None, token, None)
        if await self._swap(self._store._now(), released, "release"):
            self._owner = self._written = None
            hints.remember(self._store._backend, self.namespace, self.name, released)

    def _held(self) -> tuple[str, int]:
        if self._owner is None or self._token is None:
            raise LockNotOwnedError(f"Lock {self.name!r} is not held by this object")
        return self._owner, self._token

    def _lost(self, action: str) -> LockNotOwnedError:
        # The lease is gone for good: this object no longer counts as holding it.
        self._owner = self._written = None
        return LockNotOwnedError(
            f"Cannot {action} lock {self.name!r}: this owner no longer holds it "
            f"(fencing token {self._token}; the lease ended or another owner took it)"
        )

    async def __aenter__(self) -> AsyncLock:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Leaving the block releases the lock. A lease lost meanwhile raises
        # LockNotOwnedError if the block itself succeeded (its work was not
        # protected to the end); it never replaces the block's own exception,
        # which gets a note instead.
        if self._owner is None:
            # Released inside the block (or found lost by extend, which raised then).
            return
        try:
            await self.release()
        except KVError as error:
            if exc is None:
                raise
            exc.add_note(f"keyshelf: releasing lock {self.name!r} failed: {error}")
