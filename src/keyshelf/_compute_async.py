"""get_or_set and memoize over public store operations (async; source of ``_compute_sync.py``).

``tools/async_to_sync.py`` generates ``_compute_sync.py`` from this file by
renaming; edit this one and run ``make generate``.

Only public store operations are used (``get``, ``get_entry``, ``set``,
``setnx`` with a TTL, ``compare_and_swap``, ``expire``), so the protocol
holds on every backend, the cache tiers included, across threads, tasks and
processes:

1. Read the key; a (fresh) hit is returned at once: one ``get``.
2. On a miss, take the lease ``keyshelf-lease:<key>`` with
   ``setnx(lease, token, ttl=lock_ttl)`` (a unique token per call). A lease
   holding the released marker is taken over by
   ``compare_and_swap(lease, RELEASED, token)``: exactly one caller wins.
3. The owner reads the key again (another owner may have stored it between
   our read and our lease), runs ``factory()``, stores the value and releases
   the lease by ``compare_and_swap(lease, token, RELEASED)``: a lease that
   expired and was taken over by someone else is never touched. Leases are
   never deleted; the released marker expires with the lease's TTL.
4. The others poll the key (sleeping 1 ms, doubling up to 50 ms, with
   jitter; ``asyncio.sleep`` on the async store, so no CPU is spun and the
   loop keeps running) and read the lease each time (writing only when it is
   free or released, so waiters never queue writes): when the owner
   stores the value they return it; when the owner fails (the marker) or
   dies or is slower than ``lock_ttl`` (the lease expires), one of them
   takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .compute import (
    DEFAULT_LOCK_TTL,
    FRESH_UNTIL,
    RELEASED,
    check_flag,
    check_options,
    key_builder,
    lease_key,
)
from .errors import InvalidArgumentError
from .expiry import ttl_milliseconds, ttl_seconds
from .keys import check_key
from .locks import jittered, next_delay

if TYPE_CHECKING:
    from ._store_async import AsyncStore

_MISSING: Any = object()
_FIRST_WAIT = 0.001
_MAX_WAIT = 0.05


async def _read(store: AsyncStore, key: str, stale: bool) -> tuple[Any, bool]:
    """(value or _MISSING, fresh). Without ``stale`` a found value is always fresh."""
    if not stale:
        return await store.get(key, _MISSING), True
    entry = await store.get_entry(key)
    if entry is None:
        return _MISSING, False
    until = entry.metadata.get(FRESH_UNTIL)
    # A value written by a plain set (no mark) is fresh until its TTL.
    fresh = type(until) is not int or store._now() < until
    return entry.value, fresh


async def _acquire(store: AsyncStore, lease: str, token: str, lock_ttl: Any) -> bool:
    """Take the lease if it is free or released; True if this caller owns it now."""
    # Read first: a waiter polling a held lease then only reads, and never
    # queues a write behind the owner's (on SQLite every write takes the lock).
    held = await store.get(lease, _MISSING)
    if held is _MISSING:
        return bool(await store.setnx(lease, token, lock_ttl))
    if held != RELEASED:
        return False
    if not await store.compare_and_swap(lease, RELEASED, token):
        return False
    # compare_and_swap kept the released lease's remaining TTL: ours is lock_ttl.
    await store.expire(lease, lock_ttl)
    return True


async def _release(store: AsyncStore, lease: str, token: str) -> None:
    # Only a lease still holding our token is released; never a delete, which
    # after any check could remove the lease of the caller who took it over.
    await store.compare_and_swap(lease, token, RELEASED)


async def _call(factory: Callable[[], Any]) -> Any:
    result = factory()
    if True:  # ASYNC
        if inspect.isawaitable(result):
            result = await result
    else:
        _refuse_awaitable(result)
    return result


if False:  # SYNC: only the sync twin refuses an awaitable

    def _refuse_awaitable(result: Any) -> None:
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: no RuntimeWarning
            raise InvalidArgumentError(
                "factory returned an awaitable, which a sync store cannot await: "
                "use a store from keyshelf.open_async"
            )


async def _store_value(store: AsyncStore, key: str, value: Any, ttl: Any, stale_ttl: Any) -> None:
    # The key belongs to get_or_set: its user metadata is replaced (by the
    # freshness mark, or by nothing so an earlier mark cannot linger).
    if stale_ttl is None:
        await store.set(key, value, ttl, metadata={})
        return
    fresh_until = store._now() + ttl_milliseconds(ttl)
    total = ttl_seconds(ttl) + ttl_seconds(stale_ttl)
    await store.set(key, value, total, metadata={FRESH_UNTIL: fresh_until})


async def _sleep(delay: float) -> None:
    if True:  # ASYNC
        await asyncio.sleep(delay)
    else:
        time.sleep(delay)


async def _compute(
    store: AsyncStore,
    key: str,
    factory: Callable[[], Any],
    ttl: Any,
    stale_ttl: Any,
    lease: str,
    token: str,
) -> Any:
    """Run the factory under our lease, store the value, release the lease."""
    try:
        value, fresh = await _read(store, key, stale_ttl is not None)
        if value is _MISSING or not fresh:
            value = await _call(factory)
            await _store_value(store, key, value, ttl, stale_ttl)
    except BaseException:
        # The factory's error is what the caller needs; a failed release only
        # makes the waiters wait for the lease to expire.
        with contextlib.suppress(Exception):
            await _release(store, lease, token)
        raise
    await _release(store, lease, token)
    return value


async def _get_or_compute(
    store: AsyncStore,
    key: str,
    factory: Callable[[], Any],
    ttl: Any,
    lock_ttl: Any,
    stale_ttl: Any,
    value: Any,
    fresh: bool,
) -> Any:
    """The slow path, after a first read found ``value`` (or _MISSING) not fresh."""
    if lock_ttl is None:  # memoize(lock=False): no coordination at all
        value = await _call(factory)
        await _store_value(store, key, value, ttl, stale_ttl)
        return value
    lease = lease_key(key)
    token = uuid.uuid4().hex
    delay = _FIRST_WAIT
    while True:
        if await _acquire(store, lease, token, lock_ttl):
            return await _compute(store, key, factory, ttl, stale_ttl, lease, token)
        if value is not _MISSING:
            return value  # stale, and another caller is refreshing it
        await _sleep(jittered(delay))
        delay = next_delay(delay, _MAX_WAIT)
        value, fresh = await _read(store, key, stale_ttl is not None)
        if value is not _MISSING and fresh:
            return value


async def get_or_set(
    store: AsyncStore,
    key: str,
    factory: Callable[[], Any],
    ttl: Any = None,
    *,
    lock_ttl: Any = DEFAULT_LOCK_TTL,
    stale_ttl: Any = None,
) -> Any:
    """The implementation of :meth:`AsyncStore.get_or_set` (see the module docstring)."""
    check_key(key)
    if not callable(factory):
        raise InvalidArgumentError(f"factory must be callable, not {type(factory).__name__}")
    if lock_ttl is None:
        raise InvalidArgumentError("lock_ttl must be a positive number of seconds")
    check_options(ttl, lock_ttl, stale_ttl)
    value, fresh = await _read(store, key, stale_ttl is not None)
    if value is not _MISSING and fresh:
        return value
    return await _get_or_compute(store, key, factory, ttl, lock_ttl, stale_ttl, value, fresh)


def memoize(
    store: AsyncStore,
    ttl: Any = None,
    *,
    key: Any = None,
    typed: bool = False,
    lock: bool = True,
    stale_ttl: Any = None,
    lock_ttl: Any = DEFAULT_LOCK_TTL,
) -> Callable[[Callable[..., Any]], Any]:
    """The implementation of :meth:`AsyncStore.memoize` (see the module docstring)."""
    if lock_ttl is None:
        raise InvalidArgumentError("lock_ttl must be a positive number of seconds")
    check_options(ttl, lock_ttl, stale_ttl)
    typed = check_flag("typed", typed)
    if not check_flag("lock", lock):
        lock_ttl = None
    if key is not None and not callable(key):
        raise InvalidArgumentError(f"memoize key= must be a callable, not {type(key).__name__}")
    stale = stale_ttl is not None

    def decorate(function: Callable[..., Any]) -> Any:
        if not callable(function):
            raise InvalidArgumentError(
                f"memoize decorates a function, not {type(function).__name__}"
            )
        if True:  # ASYNC
            wrong = not inspect.iscoroutinefunction(function)
            hint = (
                "memoize on an async store decorates `async def` functions "
                "(memoize a plain function with a store from keyshelf.open)"
            )
        else:
            wrong = inspect.iscoroutinefunction(function)
            hint = (
                "memoize on a sync store decorates plain functions "
                "(memoize an `async def` function with keyshelf.open_async)"
            )
        if wrong:
            raise InvalidArgumentError(hint)
        build = key_builder(function, typed, key)
        get = store.get

        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            cache_key = build(args, kwargs)
            # The hit path: one get (one get_entry with stale_ttl).
            if stale:
                value, fresh = await _read(store, cache_key, stale)
                if value is not _MISSING and fresh:
                    return value
            else:
                value = await get(cache_key, _MISSING)
                if value is not _MISSING:
                    return value
                fresh = False
            return await _get_or_compute(
                store,
                cache_key,
                functools.partial(function, *args, **kwargs),
                ttl,
                lock_ttl,
                stale_ttl,
                value,
                fresh,
            )

        async def invalidate(*args: Any, **kwargs: Any) -> bool:
            """Forget the cached result of this call; True if there was one."""
            return bool(await store.delete(build(args, kwargs)))

        def cache_key(*args: Any, **kwargs: Any) -> str:
            """The store key this call's result is cached under."""
            return build(args, kwargs)

        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        wrapper.cache_key = cache_key  # type: ignore[attr-defined]
        return wrapper

    return decorate
