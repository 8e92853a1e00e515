"""The primitives an async backend implements (source of ``base.py``).

``tools/async_to_sync.py`` generates the sync :class:`Backend` in ``base.py``
from this file; edit this one and run ``make generate``.

A backend stores encoded records (see :mod:`keyshelf.records`) per
(namespace, key). The interface is an abstract base class: ten abstract
primitives every backend writes (read a record, the atomic read-modify-write,
put many, delete, set an expiry, scan a range, delete matching, list
namespaces, purge expired, close); a class missing one cannot be instantiated.
Everything else has a default derived from those, which a backend may override
to do the same thing faster (``get``, ``exists``, ``count``, ``stats``,
``total_size``, ``sizes``, the batch reads and writes, and every
read-modify-write operation, which defaults to :meth:`update` with a decision
from :mod:`keyshelf.records`).

Every primitive receives ``now`` in milliseconds and must treat a record with
``expires_at <= now`` as absent: expired means gone. Every primitive is
atomic. Every method may raise :class:`keyshelf.errors.BackendError`.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from ..changes import FEED_POLL_INTERVAL, Change
from ..codec import payload_size
from ..errors import UnsupportedOperationError
from ..patterns import Matcher, compile_pattern
from ..records import (
    KEEP,
    CommitOutcome,
    Decision,
    Keep,
    Meta,
    MultiDecision,
    Op,
    R,
    Record,
    Value,
    Write,
    commit_keys,
    decide_append,
    decide_commit,
    decide_compare_and_swap,
    decide_increment,
    decide_put,
    decide_set_metadata,
    stats_dict,
)


class AsyncBackend(ABC):
    """Base class of async backends: ten abstract primitives, defaults for the rest."""

    #: Human-readable location used in error messages (file path, server).
    location: str = ""

    #: True if :meth:`update_many` works: several keys change in one atomic
    #: step. False by default, so a backend written before it existed keeps
    #: working (multi-key commits on it raise UnsupportedOperationError).
    multi_key_atomic: bool = False

    #: True if the change-feed primitives work (:meth:`enable_changes`,
    #: :meth:`revision`, :meth:`changes`, :meth:`wait_changes`). False by
    #: default: the defaults raise UnsupportedOperationError.
    change_feed: bool = False

    if True:  # ASYNC
        #: None, or a plain function that does :meth:`get` on the calling
        #: thread without awaiting (same arguments, same answer), offered by a
        #: backend whose reads never wait (the memory backend's bridge). It
        #: answers :data:`AWAIT` instead, having done nothing, when the caller
        #: must await :meth:`get` (which then also gives the event loop a
        #: turn). The async store's ``get`` calls it: one coroutine per call
        #: instead of two (the store's and the backend's), ~0.2 µs of a ~0.7 µs
        #: memory get.
        get_now: Callable[[str, str, int], Any] | None = None

    # -- abstract primitives: every backend writes these ----------------------

    @abstractmethod
    async def get_record(self, ns: str, key: str, now: int) -> Record | None:
        """The live record of ``key`` with its metadata, or None."""

    @abstractmethod
    async def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        """Atomically read the live record, apply ``decide`` and do what it asks.

        ``decide`` gets the live record (None if missing or expired) and
        returns ``(action, result)``: a :class:`~keyshelf.records.Write`
        stores a new record (``created_at`` kept and ``version`` + 1 when a
        live record is replaced, else both start afresh: ``now`` and 1),
        :data:`~keyshelf.records.DELETE` removes the key, None changes
        nothing. Runs as one transaction: no other writer can change the key
        between the read and the action. If ``decide`` raises, nothing
        changes. ``decide`` is pure, so a backend may call it again on a
        retry. Returns ``result``.
        """

    @abstractmethod
    async def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        """Set every item (keeping each live key's user metadata), all or nothing."""

    @abstractmethod
    async def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        """Delete ``keys`` atomically; return those that were live."""

    @abstractmethod
    async def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        """Set (or with None, remove) the expiry of a live key.

        Returns True if the key is live, or for ``None`` only if it had an
        expiry to remove. Does not change ``version`` or ``updated_at``
        (which is why it is not a decision for :meth:`update`).
        """

    @abstractmethod
    async def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        """Live keys matching ``matcher`` in code-point order, after ``after``.

        At most ``limit`` rows (all if None); each with its value if
        ``values`` else None. Serves patterns with a literal prefix by a range
        scan where the backend has an ordered index.
        """

    @abstractmethod
    async def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        """Delete every record matching ``matcher`` atomically, expired ones too.

        Returns how many of them were live.
        """

    @abstractmethod
    async def namespaces(self, now: int) -> list[str]:
        """Sorted names of namespaces holding at least one live key."""

    @abstractmethod
    async def purge_expired(self, ns: str | None, now: int) -> int:
        """Remove expired records of ``ns`` (every namespace if None); count them."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; further calls raise StoreClosedError."""

    # -- derived primitives: defaults a backend may override for speed ----------

    async def get(self, ns: str, key: str, now: int) -> Value | None:
        """The live value of ``key``, or None. Default: from :meth:`get_record`."""
        record = await self.get_record(ns, key, now)
        return None if record is None else (record.tag, record.payload)

    async def count(self, ns: str, matcher: Matcher, now: int) -> int:
        """Number of live keys matching ``matcher``. Default: a :meth:`scan`."""
        return len(await self.scan(ns, matcher, now, None, None, False))

    async def stats(self, ns: str, now: int) -> dict[str, Any]:
        """``total_keys``, ``active_keys``, ``expired_keys``, ``keys_with_ttl``.

        ``total_keys`` counts stored records, expired ones not yet purged
        included. The default sees only live records (through
        :meth:`scan_records`), so it reports no expired keys: right for a
        backend that removes records as they expire; a backend that keeps
        them until purged overrides it.
        """
        active = with_ttl = 0
        after: str | None = None
        while True:
            rows = await self.scan_records(ns, now, after, _BATCH)
            for _, record in rows:
                active += 1
                with_ttl += record.expires_at is not None
            if len(rows) < _BATCH:
                return stats_dict(active, active, with_ttl)
            after = rows[-1][0]

    async def total_size(self, ns: str, now: int) -> int:
        """Sum of :func:`codec.payload_size` over the live keys of ``ns``."""
        rows = await self.scan(ns, _ALL, now, None, None, True)
        return sum(payload_size(*value) for _, value in rows if value is not None)

    async def prepare(self) -> None:  # noqa: B027 (a hook whose default is to do nothing)
        """Connect and check the store now, if that is not done yet; idempotent.

        ``open_async()`` does no I/O (it must not block the event loop), so
        the async Redis and PostgreSQL backends connect on their first call;
        the store calls this on ``async with`` so that a server that cannot
        work is refused there. The default does nothing.
        """

    def note_reads(self, ns: str, keys: Sequence[str], now: int) -> None:  # noqa: B027
        """``get`` served ``keys`` at ``now`` without calling this backend's :meth:`get`.

        A plain method, in both interfaces: the cache tier calls it for every
        ``get`` it answers (from its entries, or through :meth:`get_record`
        on a miss), so that a backend whose eviction ranks reads (a bounded
        LRU or LFU store) counts those reads as if ``get`` had been called.
        It must be cheap and do no I/O that can wait: it runs on the caller's
        thread, on the async API the event loop's. Keys deleted or evicted
        meanwhile are ignored. The default does nothing: right for every
        backend that does not rank reads.
        """

    async def time_left(self, ns: str, key: str, now: int) -> int | None:
        """Whole milliseconds until ``key`` expires; None if it never does; -1 if not live.

        What ``ttl()`` reports. The default subtracts ``now`` from the live
        record's expiry; the server backends (Redis, PostgreSQL) ask the
        server instead, so the answer comes from the clock that expires the
        key and never exceeds the TTL given, whatever the client's clock says.
        """
        record = await self.get_record(ns, key, now)
        if record is None:
            return -1
        if record.expires_at is None:
            return None
        return max(record.expires_at - now, 0)

    async def exists(self, ns: str, key: str, now: int) -> bool:
        """True if ``key`` is live."""
        return await self.get(ns, key, now) is not None

    async def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        """The live values among ``keys`` (missing ones left out)."""
        found: dict[str, Value] = {}
        for key in keys:
            value = await self.get(ns, key, now)
            if value is not None:
                found[key] = value
        return found

    async def put(
        self,
        ns: str,
        key: str,
        value: Value,
        expires_at: int | None,
        meta: Meta,
        now: int,
        *,
        nx: bool = False,
        xx: bool = False,
        keep_ttl: bool = False,
    ) -> bool:
        """Store ``value``; see :func:`records.decide_put` for the conditions."""
        decide = decide_put(value, expires_at, meta, nx=nx, xx=xx, keep_ttl=keep_ttl)
        return await self.update(ns, key, now, decide)

    async def increment(self, ns: str, key: str, delta: int | float, now: int) -> int | float:
        """Atomically add ``delta`` (see :func:`records.decide_increment`)."""
        return await self.update(ns, key, now, decide_increment(delta))

    async def append(self, ns: str, key: str, value: Value, now: int, max_size: int) -> Value:
        """Atomically append; returns the new encoded value.

        Raises ValueTooLargeError, writing nothing, if the result would be
        larger than ``max_size`` bytes.
        """
        return await self.update(ns, key, now, decide_append(value, max_size))

    async def compare_and_swap(
        self, ns: str, key: str, expected: Value, new: Value, now: int
    ) -> bool:
        """Atomically replace the value if it equals ``expected`` (typed)."""
        return await self.update(ns, key, now, decide_compare_and_swap(expected, new))

    async def set_metadata(
        self,
        ns: str,
        key: str,
        merge: Callable[[bytes | None], bytes | None],
        now: int,
        *,
        expires_at: int | Keep | None = KEEP,
    ) -> bool:
        """Store ``merge(old metadata)`` for a live key (and its expiry, if given)."""
        return await self.update(ns, key, now, decide_set_metadata(merge, expires_at))

    async def update_many(
        self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]
    ) -> R:
        """Atomically read the live records of ``keys``, apply ``decide``, do what it asks.

        The multi-key :meth:`update`: ``decide`` gets ``{key: live record or
        None}`` for every key of ``keys`` (distinct, sorted) and returns
        ``({key: action}, result)``; each action is applied with the rules of
        :meth:`update` (``created_at`` kept and ``version`` + 1 when a live
        record is replaced), all in one transaction with the reads: no other
        writer changes any of the keys in between, and nothing is written if
        ``decide`` raises. ``decide`` is pure and may be called again on a
        retry. At most :data:`~keyshelf.records.MAX_MUTATIONS` keys plus as many
        checks are asked for at once.

        Not abstract: the default raises :class:`UnsupportedOperationError`
        naming the backend, and :attr:`multi_key_atomic` is False. A backend
        that implements it sets ``multi_key_atomic = True``.
        """
        name = type(self).__name__
        where = f" ({self.location})" if self.location else ""
        raise UnsupportedOperationError(
            f"The {name} backend{where} cannot change several keys in one atomic step: "
            "atomic() commits and transaction() are not available on it; nothing was changed"
        )

    async def commit(
        self, ns: str, checks: dict[str, int | None], ops: list[Op], now: int
    ) -> CommitOutcome:
        """A checked commit (``kv.atomic().commit()``): see :func:`records.decide_commit`.

        Returns ``(ok, {key written: new version})``; ``ok`` is False, with
        nothing written, if a key's live version differs from its check (None:
        the key must be absent). The default runs the decision through
        :meth:`update_many`; a backend may override it with one round trip.
        """
        keys = commit_keys(checks, ops)
        return await self.update_many(ns, keys, now, decide_commit(checks, ops, now))

    async def sizes(self, ns: str, keys: Sequence[str], now: int) -> dict[str, int]:
        """Encoded size of each live key among ``keys``."""
        return {
            key: payload_size(*value) for key, value in (await self.get_many(ns, keys, now)).items()
        }

    async def scan_records(
        self, ns: str, now: int, after: str | None, limit: int
    ) -> list[tuple[str, Record]]:
        """Up to ``limit`` live records of ``ns`` in key order, after ``after``.

        Used to stream whole namespaces (export, migration) in batches. The
        default lists the keys with :meth:`scan` and reads each record; a key
        that disappears in between is left out. Backends override it with one
        query. Each call is consistent on its own; successive calls are not a
        snapshot.
        """
        rows = await self.scan(ns, _ALL, now, after, limit, False)
        found: list[tuple[str, Record]] = []
        for key, _ in rows:
            record = await self.get_record(ns, key, now)
            if record is not None:
                found.append((key, record))
        return found

    async def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        """Store each ``(key, write)`` like a plain ``set`` with its own expiry and metadata.

        The user metadata is replaced by ``write.meta``; ``created_at`` is
        kept for a live key and the version grows, as for any write. Used by
        import and migration. The default writes key by key (a failure leaves
        a prefix of ``items`` written); backends that can make the batch one
        transaction override it.
        """
        for key, write in items:
            await self.put(ns, key, (write.tag, write.payload), write.expires_at, write.meta, now)

    # -- change feed (docs/changes.md): not abstract, off by default -------------

    def _no_feed(self) -> UnsupportedOperationError:
        name = type(self).__name__
        where = f" ({self.location})" if self.location else ""
        return UnsupportedOperationError(
            f"The {name} backend{where} has no change feed: revision() and watch() "
            "are not available on it; nothing was changed"
        )

    async def enable_changes(self, history_count: int | None, history_ms: int | None) -> None:
        """Switch the change feed on for the whole store, or set its retention.

        Persisted in the store: every writer of every process records from
        its next write. Keeps at most the latest ``history_count`` changes
        and/or the changes younger than ``history_ms`` (at least one is given;
        with both, a change beyond either bound is pruned). Idempotent.
        """
        raise self._no_feed()

    async def changes_enabled(self) -> bool:
        """True once :meth:`enable_changes` ran on this store (from any process)."""
        raise self._no_feed()

    async def revision(self, now: int, ns: str | None = None) -> int:
        """The latest recorded revision (0 if none); it never goes down.

        ``ns``: the namespace a watch follows. Store-wide revisions ignore it;
        a backend whose revisions are per namespace (Redis Cluster) answers
        for that namespace (and for None, as it documents).
        """
        raise self._no_feed()

    async def changes(self, ns: str | None, after: int, limit: int, now: int) -> list[Change]:
        """Recorded changes with revision > ``after``, ascending.

        Of namespace ``ns`` (every namespace if None); at most ``limit``
        changes, except that the changes of one revision are never split
        (the caller resumes after the last revision returned). Raises
        :class:`~keyshelf.errors.ChangesCompactedError` when a change with a
        revision > ``after`` was pruned. Returns [] if nothing is recorded.
        """
        raise self._no_feed()

    async def wait_changes(self, after: int, timeout: float, ns: str | None = None) -> None:
        """Return when the revision may be > ``after``, or after ``timeout`` seconds.

        ``ns`` as for :meth:`revision`: the namespace whose revision ``after``
        is, where revisions are per namespace; store-wide backends ignore it.

        A doorbell only: spurious returns are allowed, the caller re-reads
        :meth:`changes`. Returns promptly once the backend is closed, and
        releases what it waits on when the awaiting task is cancelled. The
        default sleeps :data:`~keyshelf.changes.FEED_POLL_INTERVAL` (at most
        ``timeout``); backends override it with their own means.
        """
        if True:  # ASYNC
            await asyncio.sleep(min(timeout, FEED_POLL_INTERVAL))
        else:
            time.sleep(min(timeout, FEED_POLL_INTERVAL))


if True:  # ASYNC
    #: What :attr:`AsyncBackend.get_now` answers when the caller must await
    #: :meth:`AsyncBackend.get` instead (a get answers None or a tuple, never this).
    AWAIT: Any = object()

# Every key, for the defaults above.
_ALL = compile_pattern("*")
# Records per scan_records call of the stats default.
_BATCH = 1000
