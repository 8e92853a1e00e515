"""Locks with leases and fencing tokens: the record and the pure decisions. No I/O.

A lock is one key that never expires by itself. Its value is a record
``{"owner": str | None, "fencing_token": int, "lease_until": int | None}``:
the current holder's unique owner token (``None`` when released), the number
of the latest acquisition, and the instant (whole milliseconds of the store's
clock) when the holder's lease ends. Because the key outlives every lease,
the fencing counter keeps growing across expiries and releases.

Every change is one atomic operation of the store: ``setnx`` creates the
record, ``compare_and_swap`` from the exact record read replaces it. So of
several processes that try to change the same record, exactly one succeeds,
whatever the backend, and every successful acquisition writes a fencing token
one above the one it replaced: strictly larger for each acquisition of the
same name. The classes that do the I/O are ``AsyncLock`` (``_locks_async``)
and its generated twin ``Lock`` (``_locks_sync``).

The lock named ``name`` of a store bound to namespace ``ns`` is the key
``name`` of the namespace ``ns + ":locks"`` (:func:`lock_namespace`), so locks
never collide with, nor appear among, the keys of ``ns``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import weakref
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._show import show
from .errors import InvalidArgumentError, InvalidTTLError
from .expiry import ttl_milliseconds
from .keys import check_key, check_namespace

if TYPE_CHECKING:
    from ._core import StoreCore

#: Suffix of the namespace that holds the locks of a namespace.
LOCK_NAMESPACE_SUFFIX = ":locks"

# Waiting for a held lock: the first pause, the longest pause (seconds).
# Capped exponential backoff with jitter, so waiters neither spin the CPU nor
# poll in lockstep; the cap bounds how late a waiter notices a release.
FIRST_DELAY = 0.002
MAX_DELAY = 0.1

_FIELDS = ("owner", "fencing_token", "lease_until")


def lock_namespace(namespace: str) -> str:
    """The namespace holding the locks of a store bound to ``namespace``."""
    return check_namespace(namespace + LOCK_NAMESPACE_SUFFIX)


@dataclasses.dataclass(frozen=True)
class LockState:
    """A decoded lock record (see the module docstring)."""

    owner: str | None
    fencing_token: int
    lease_until: int | None

    def free_at(self, now: int) -> bool:
        """True if nobody holds the lock at ``now``: released, or the lease ended."""
        return self.owner is None or self.lease_until is None or self.lease_until <= now

    def held_by(self, owner: str, fencing_token: int, now: int) -> bool:
        """True if this acquisition (owner and token) still holds a live lease at ``now``."""
        return self.owner == owner and self.fencing_token == fencing_token and not self.free_at(now)


def record(owner: str | None, fencing_token: int, lease_until: int | None) -> dict[str, Any]:
    """The stored value of a lock (always built in the same field order).

    ``compare_and_swap`` compares typed encodings, in which dict order
    counts: every writer builds the record here, so equal records encode
    equally.
    """
    return {"owner": owner, "fencing_token": fencing_token, "lease_until": lease_until}


def parse(value: Any, name: str, namespace: str) -> LockState:
    """The state of a lock from its stored value; a value that is no lock record raises.

    A key of the lock namespace written by something other than a lock (a
    plain ``set`` through a view of that namespace) is refused with
    :class:`InvalidArgumentError` rather than overwritten.
    """
    if type(value) is dict and tuple(value) == _FIELDS:
        owner, token, until = value["owner"], value["fencing_token"], value["lease_until"]
        if (
            (owner is None or type(owner) is str)
            and type(token) is int
            and token >= 0
            and (until is None or type(until) is int)
        ):
            return LockState(owner, token, until)
    raise InvalidArgumentError(
        f"Key {name!r} of namespace {namespace!r} holds {show(value)}, not a keyshelf lock "
        "record; the lock namespace is for locks only"
    )


def claim(current: LockState | None, owner: str, now: int, ttl_ms: int) -> dict[str, Any] | None:
    """The record that acquires the lock for ``owner`` at ``now``, or None if it is held.

    A missing lock starts at fencing token 1; a free one (released or lease
    ended) takes the next token.
    """
    if current is None:
        return record(owner, 1, now + ttl_ms)
    if current.free_at(now):
        return record(owner, current.fencing_token + 1, now + ttl_ms)
    return None


class Hints:
    """The free lock records this process last wrote, per backend.

    A lock object made for one ``with`` block does not know the record it is
    about to replace; reading it costs a backend call. Releasing remembers
    the record it wrote here, and the next acquisition of that name in this
    process swaps from it without reading: an uncontended acquire + release
    is then two backend calls, like ``setnx`` + ``delete``. A hint is only
    ever the *expected* value of a ``compare_and_swap``, which the backend
    checks: a stale one (another process took the lock since) makes that swap
    fail, and the acquisition reads the record as it would have anyway.
    Bounded: the table of a backend is emptied when it reaches
    :data:`LIMIT` names.
    """

    LIMIT = 1024

    def __init__(self) -> None:
        self._by_backend: weakref.WeakKeyDictionary[object, dict[tuple[str, str], Any]] = (
            weakref.WeakKeyDictionary()
        )

    def _table(self, backend: object) -> dict[tuple[str, str], Any] | None:
        try:
            return self._by_backend.setdefault(backend, {})
        except TypeError:  # a backend that cannot be weakly referenced: no hints
            return None

    def take(self, backend: object, namespace: str, name: str) -> Any:
        """The remembered free record of a lock (forgotten now), or None."""
        table = self._table(backend)
        return None if table is None else table.pop((namespace, name), None)

    def remember(self, backend: object, namespace: str, name: str, value: Any) -> None:
        """Remember ``value``, the free record this process just wrote."""
        table = self._table(backend)
        if table is not None:
            if len(table) >= self.LIMIT:
                table.clear()
            table[(namespace, name)] = value


#: The hints of this process (shared by the sync and the async locks).
hints = Hints()

S = TypeVar("S", bound="StoreCore[Any]")

# Each store's view of its lock namespace, made once (a view is a copy of the store).
_views: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def lock_view(store: S, namespace: str) -> S:
    """``store.namespace(namespace)``, kept for the next lock made on ``store``."""
    view = _views.get(store)
    if view is None or view.namespace_name != namespace:
        view = store.namespace(namespace)
        _views[store] = view
    return cast(S, view)


def check_lock_args(
    name: object, ttl: object, blocking: object, timeout: object
) -> tuple[str, int, bool, float | None]:
    """Validate the arguments of ``kv.lock(...)`` before any I/O.

    Returns the name, the TTL in whole milliseconds (at least 1), ``blocking``
    as a bool and the timeout in seconds (or None: wait without limit).
    """
    checked = check_key(name)
    ttl_ms = check_lock_ttl(ttl)
    if type(blocking) is not bool:
        raise InvalidArgumentError(f"blocking must be True or False, not {show(blocking)}")
    if timeout is None:
        return checked, ttl_ms, blocking, None
    if type(timeout) is not int and type(timeout) is not float:
        raise InvalidArgumentError(f"timeout must be a number of seconds, not {show(timeout)}")
    seconds = float(timeout)
    if math.isnan(seconds) or seconds < 0 or math.isinf(seconds):
        raise InvalidArgumentError(
            f"timeout must be a finite number of seconds >= 0, not {show(timeout)}"
        )
    if not blocking:
        raise InvalidArgumentError("timeout only applies to a blocking lock (blocking=True)")
    return checked, ttl_ms, blocking, seconds


def check_lock_ttl(ttl: object) -> int:
    """A lease length in whole milliseconds; at least one (InvalidTTLError otherwise)."""
    ttl_ms = ttl_milliseconds(ttl)
    if ttl_ms < 1:
        raise InvalidTTLError(f"A lock's TTL must be at least 1 ms, got {show(ttl)}")
    return ttl_ms


def next_delay(delay: float, cap: float = MAX_DELAY) -> float:
    """The pause after one of ``delay`` (doubling, capped at ``cap``).

    The one backoff policy of keyshelf's waiters: lock waiters and
    ``get_or_set`` waiters (with a shorter cap) both use it.
    """
    return min(delay * 2, cap)


def jittered(delay: float) -> float:
    """``delay`` with jitter over its upper half, so waiters spread out."""
    return random.uniform(delay / 2, delay)


def pause(delay: float, lease_left_ms: int, time_left: float | None) -> float:
    """How long to sleep before looking at a held lock again.

    :func:`jittered` ``delay``, no longer than the holder's lease has left
    (by the store's clock, plus a millisecond) nor than what is left of the
    timeout.
    """
    seconds = jittered(delay)
    if lease_left_ms >= 0:
        seconds = min(seconds, (lease_left_ms + 1) / 1000)
    if time_left is not None:
        seconds = min(seconds, time_left)
    return max(seconds, 0.0)
