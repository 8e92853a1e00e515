"""The S3 backend, written once for asyncio (source of ``_s3_sync.py``).

``tools/async_to_sync.py`` generates the sync twin from this file (the async
obstore client :class:`AsyncS3IO` becomes the sync :class:`S3IO`); edit this
one and run ``make generate``. Layout and object bodies: :mod:`._s3_io`;
user guide: ``docs/s3.md``.

Guarantees:

* **Every single-key operation is atomic** through S3's conditional writes:
  a write names the ETag it read (``If-Match``) or that no object exists
  (``If-None-Match: *``); if another writer got there first the service
  refuses it, and the operation reads again and retries (up to
  ``conflict_retries`` times, with jittered backoff growing to 1 s). Each attempt carries a
  random nonce, and a record keeps the nonces of the latest writes to its
  key, so a write whose reply was lost is recognised
  instead of applied twice. Nothing is lost between concurrent writers on
  any number of machines.
* **Deletes are conditional writes of an empty body** (a tombstone): S3's
  plain DELETE cannot be made conditional through the client, and an
  unconditional one could erase a concurrent write.
* **Batches are all or nothing, visible at once** (``mset``/``set_many``,
  ``delete_many``, ``delete_pattern``, ``clear``, import): each key's object
  is rewritten as a *pending* object that holds both its new and its prior
  body and names the batch; then one commit object ``b/<batch>`` is created
  with ``If-None-Match: *``. Until it exists every reader takes the prior
  body, from then on the new one; a batch undecided for long (10 s) is
  aborted by whoever meets it, by creating the same commit object with an
  "aborted" body, so exactly one of commit and abort wins. Writers of a key
  with a pending object wait for its batch to be decided (an older batch
  aborts a younger one at once: no deadlock between batches). After the
  commit the writer rewrites the objects as plain records and removes the
  commit object; a batch whose writer died is settled by the next writer of
  each key, and by the cleanup sweep.
* **Expiry** is judged by the store's clock (the ``clock`` option, default
  the machine's), the same on every operation. A key with an expiry also has
  a zero-byte *marker* object, written before the record, so a listing knows
  which keys must be read to check their expiry without reading the others.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..codec import payload_size
from ..errors import BackendError, InvalidKeyError, ReadOnlyStoreError, StoreClosedError
from ..patterns import Matcher, compile_pattern
from ..records import (
    KEEP,
    Decision,
    Meta,
    MultiDecision,
    R,
    Record,
    Value,
    Write,
    decide_put,
    is_live,
    new_record,
    stats_dict,
)
from ._base_async import AsyncBackend
from ._s3_io import (
    ABORTED,
    COMMITTED,
    MARKER_GRACE,
    MARKER_SEPARATOR,
    MAX_NAME_BYTES,
    AsyncS3IO,
    ConflictError,
    Layout,
    Pending,
    S3Settings,
    Stored,
    age_ms,
    escape,
    in_range,
    marker_expiry,
    new_nonce,
    pack,
    start_after,
    unescape,
    unpack,
    unwrap,
    wrap,
)

_ALL = compile_pattern("*")
_STRIPES = 64
#: Objects remembered per store (name -> body, ETag), and the largest body
#: remembered: a write to a key this process read or wrote lately is one PUT.
_SEEN_ENTRIES = 2048
_SEEN_BYTES = 8 * 1024
#: A batch undecided this long after it started (by the store clock), or that
#: a writer has waited on this long, is presumed dead and aborted.
_STALE_MS = 10_000
_STALE_WAIT = 10.0
#: Prefix of a batch's intent markers ("0-<batch>": an expiry marker that is
#: always due, so a listing reads and settles the key's pending object).
_INTENT = "0-"


class _Tombstone:
    """Marker for "write an empty body": the key is deleted."""


TOMBSTONE = _Tombstone()
Action = Record | _Tombstone | None
Step = Callable[[Record | None, Stored | None], tuple[Action, Any]]


class _MovedError(Exception):
    """A key of a multi-key commit changed between its read and its pending write."""


@dataclass(frozen=True)
class _Prepared:
    """One key of a batch after its pending object was written (or no write was needed)."""

    key: str
    name: str
    etag: str | None  # of the pending object; None: the batch leaves this key alone
    new: bytes
    prior_body: bytes
    prior: Stored | None
    marker: str | None  # the new record's expiry marker
    fresh: bool  # that marker was written by this batch
    result: Any


class AsyncS3Backend(AsyncBackend):
    """Keyshelf records as objects of one bucket, under one prefix."""

    #: update_many (atomic() commits, transaction()) works: through a batch.
    multi_key_atomic = True

    def __init__(self, settings: S3Settings) -> None:
        self.location = settings.location
        self._layout = Layout(settings.root)
        self._retries = settings.conflict_retries
        self._readonly = settings.readonly
        self._io = AsyncS3IO(settings)
        self._closed = False
        # Read-modify-writes of one key in this process queue on a local lock
        # (striped over the keys): conditional writes then only ever race with
        # other processes, instead of every thread or task retrying against
        # every other one.
        self._locks = [self._io.lock() for _ in range(_STRIPES)]
        self._seen: dict[str, tuple[bytes, str]] = {}
        # Decided batches (commit object body); a decision is final, so
        # forgetting one only costs a GET.
        self._decided: dict[str, bytes] = {}

    # -- plumbing -----------------------------------------------------------

    def _name(self, ns: str, key: str) -> str:
        if self._closed:
            raise StoreClosedError(f"The store {self.location} is closed")
        name = self._layout.data(ns, key)
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidKeyError(
                f"Key {key!r} in namespace {ns!r} is too long for S3: its object name "
                f"would be {len(name.encode('utf-8'))} bytes, above S3's {MAX_NAME_BYTES}"
            )
        return name

    def _read_only(self) -> ReadOnlyStoreError:
        return ReadOnlyStoreError(
            f"Cannot write {self.location}: the store was opened with readonly=True; "
            "nothing was changed"
        )

    def _parse(self, body: bytes, name: str) -> Stored | None:
        return unpack(body, name) if body else None

    async def _read(self, name: str) -> Stored | None:
        """The committed record of an object (one GET; more if a batch is pending)."""
        _, body = await self._settle(name, await self._fetch(name), 0, writing=False)
        return self._parse(body, name)

    async def _batch_state(self, batch: str) -> bytes | None:
        """COMMITTED, ABORTED, or None while the batch is undecided."""
        state = self._decided.get(batch)
        if state is None:
            got = await self._io.get(self._layout.batch(batch))
            if got is None:
                return None
            state = got[0]
            if len(self._decided) >= _SEEN_ENTRIES:
                self._decided.clear()
            self._decided[batch] = state
        return state

    async def _settle(
        self,
        name: str,
        got: tuple[bytes, str] | None,
        now: int,
        *,
        writing: bool,
        mine: tuple[int, str] | None = None,
    ) -> tuple[tuple[bytes, str] | None, bytes]:
        """The object ``got`` of ``name`` (maybe read again) and its committed body.

        A plain object is its own body (empty: a tombstone or no object). A
        pending object of a batch is its new body once the batch committed,
        its prior body if it aborted. While undecided, a reader takes the
        prior body (the batch is not visible yet); a writer (``writing``)
        waits for the decision, and aborts the batch if it is stale, or
        younger than the writer's own batch ``mine`` (wound-wait: the older
        batch never waits for a younger one, so batches cannot deadlock).
        """
        waited_since: float | None = None
        attempt = 0
        while got is not None:
            pending = unwrap(got[0], name)
            if pending is None:
                return got, got[0]
            state = await self._batch_state(pending.batch)
            if state is not None:
                return got, pending.new if state == COMMITTED else pending.prior
            # No commit object: undecided, or committed, rolled forward and its
            # commit object removed, and then the object has changed since.
            again = await self._fetch(name)
            if again is None or again[1] != got[1]:
                got = again
                continue
            if not writing:
                return got, pending.prior
            if waited_since is None:
                waited_since = time.monotonic()
            if (
                (mine is not None and mine < (pending.started, pending.batch))
                or now - pending.started > _STALE_MS
                or time.monotonic() - waited_since >= _STALE_WAIT
            ):
                # Whoever creates the commit object first decides the batch.
                with contextlib.suppress(ConflictError):
                    await self._io.put(self._layout.batch(pending.batch), ABORTED, create=True)
                continue
            await self._io.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.1)))
            attempt += 1
            got = await self._fetch(name)
        return got, b""

    async def _cas(
        self, ns: str, key: str, now: int, step: Step, *, absent_first: bool = False
    ) -> Any:
        """Read the key's object, let ``step`` decide, write it conditionally; retry on conflict.

        ``step(live, stored)`` gets the live record (None if absent or
        expired) and the stored one (expired included) and returns the action
        (a Record to store, TOMBSTONE, or None for no write) and the result.
        With ``absent_first`` and nothing remembered, the first attempt
        assumes the key has no object and writes with ``If-None-Match: *``.
        """
        name = self._name(ns, key)
        if self._readonly:
            raise self._read_only()
        async with self._locks[hash((ns, key)) % _STRIPES]:
            return await self._cas_locked(ns, key, name, now, step, absent_first)

    async def _fetch(self, name: str) -> tuple[bytes, str] | None:
        """GET an object (body, etag), and remember it for the next write."""
        got = await self._io.get(name)
        if got is None:
            self._seen.pop(name, None)
        else:
            self._remember(name, got[0], got[1])
        return got

    def _remember(self, name: str, body: bytes, etag: str) -> None:
        seen = self._seen
        if len(body) > _SEEN_BYTES:
            seen.pop(name, None)
            return
        seen[name] = (body, etag)
        if len(seen) > _SEEN_ENTRIES:
            # The oldest entry; another thread may evict it first.
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del seen[next(iter(seen))]

    async def _cas_locked(
        self, ns: str, key: str, name: str, now: int, step: Step, absent_first: bool
    ) -> Any:
        # A copy remembered from this process's last read or write of the key
        # (or, with absent_first, the guess that there is none) saves the GET:
        # the conditional write below fails if it is wrong.
        got = self._seen.get(name)
        guessed = got is not None or absent_first
        if not guessed:
            got = await self._fetch(name)
        for attempt in range(self._retries):
            got, current = await self._settle(name, got, now, writing=True)
            stored = self._parse(current, name)
            live = None
            if stored is not None and is_live(stored.record.expires_at, now):
                live = stored.record
            action, result = step(live, stored)
            if action is None:
                if guessed:
                    # No write would check the guess: read the object.
                    guessed = False
                    got = await self._fetch(name)
                    continue
                return result
            nonce = new_nonce()
            body, marker, fresh = await self._body(ns, key, action, stored, nonce)
            try:
                etag = await self._io.put(
                    name, body, create=got is None, etag=None if got is None else got[1]
                )
                self._remember(name, body, etag)
            except ConflictError:
                guessed = False
                got = await self._fetch(name)
                _, now_body = await self._settle(name, got, now, writing=False)
                now_stored = self._parse(now_body, name)
                landed = body and now_stored is not None and nonce in now_stored.writes
                if not landed:
                    if fresh and marker is not None:
                        await self._io.delete(self._layout.marker(ns, key, marker))
                    # Full jitter, growing to 1 s: with a cap of 0.1 s four
                    # processes on one key starved a writer of 64 attempts.
                    await self._io.sleep(random.uniform(0, min(0.005 * 2**attempt, 1.0)))
                    continue
            if stored is not None and stored.marker is not None and stored.marker != marker:
                # Only the replaced version referenced it, and it is gone for good.
                await self._io.delete(self._layout.marker(ns, key, stored.marker))
            return result
        raise BackendError(
            f"S3 {self.location}: gave up on key {key!r} in namespace {ns!r} after "
            f"{self._retries} conflicting writes by other clients (option conflict_retries)"
        )

    async def _body(
        self, ns: str, key: str, action: Record | _Tombstone, stored: Stored | None, nonce: str
    ) -> tuple[bytes, str | None, bool]:
        """(object body, expiry marker, whether that marker was written now) of an action."""
        if isinstance(action, _Tombstone):
            return b"", None, False
        marker: str | None = None
        fresh = False
        if action.expires_at is not None:
            if (
                stored is not None
                and stored.marker is not None
                and marker_expiry(stored.marker) == action.expires_at
            ):
                marker = stored.marker  # names this very expiry already
            else:
                marker, fresh = f"{action.expires_at}-{nonce}", True
                # Before the record: a record with an expiry always has a marker.
                await self._io.put(self._layout.marker(ns, key, marker), b"")
        # The nonces of the latest writes travel with the record, so a write
        # whose reply was lost is recognised even after others.
        history = [] if stored is None else stored.writes
        return pack(action, [nonce, *history], marker), marker, fresh

    # -- batches: all or nothing through one commit object ----------------------

    async def _batch(
        self, ns: str, steps: Sequence[tuple[str, Step]], now: int, *, absent_first: bool = False
    ) -> list[Any]:
        """Apply ``steps`` (one per distinct key) all or nothing; their results, in order.

        1. an intent marker per key (``x/<ns>/<key> 0 0-<batch>``, always
           due, so listings read these keys and settle them);
        2. a pending object per key (new and prior body, conditional write);
        3. the commit object ``b/<batch>``, created with ``If-None-Match: *``:
           the batch is visible from this one request on;
        4. roll forward: plain records, markers and commit object removed.

        A failure before 3 aborts the batch (nothing visible changes) and
        raises; a batch aborted by another writer is started afresh. A lost
        reply to 3 raises with the outcome decided by the commit object.
        """
        if self._readonly:
            raise self._read_only()
        if len(steps) <= 1:
            return [
                await self._cas(ns, key, now, step, absent_first=absent_first)
                for key, step in steps
            ]
        for attempt in range(self._retries):
            results = await self._attempt(ns, steps, now, absent_first)
            if results is not None:
                return results
            await self._io.sleep(random.uniform(0, min(0.005 * 2**attempt, 1.0)))
        raise BackendError(
            f"S3 {self.location}: gave up on a batch of {len(steps)} keys in namespace {ns!r} "
            f"after {self._retries} attempts aborted by concurrent writers "
            "(option conflict_retries); nothing was changed"
        )

    async def _attempt(
        self, ns: str, steps: Sequence[tuple[str, Step]], now: int, absent_first: bool
    ) -> list[Any] | None:
        """One try of :meth:`_batch`: the results, or None if another writer aborted it."""
        batch = new_nonce()
        mine = (now, batch)
        intents = [self._layout.marker(ns, key, _INTENT + batch) for key, _ in steps]
        done: list[_Prepared] = []
        try:
            await self._io.each(lambda intent: self._io.put(intent, b""), intents)
            prepared = await self._io.each(
                lambda item: self._prepare(
                    ns, item[0], now, item[1], batch, mine, absent_first, done
                ),
                list(steps),
            )
        except Exception:
            written = {p.key for p in done}
            unknown = [key for key, _ in steps if key not in written]
            await self._undo(ns, batch, done, intents, unknown, now)
            raise
        if not await self._commit(ns, batch, prepared, done, intents):
            return None
        return [p.result for p in prepared]

    async def _commit(
        self,
        ns: str,
        batch: str,
        prepared: list[_Prepared],
        done: list[_Prepared],
        intents: list[str],
    ) -> bool:
        """Create the commit object and roll forward; False if another writer aborted it."""
        if all(p.etag is None for p in prepared):
            await self._io.each(self._io.delete, intents)  # nothing to change
            return True
        commit = self._layout.batch(batch)
        try:
            await self._io.put(commit, COMMITTED, create=True)
        except ConflictError:
            decided = await self._io.get(commit)
            if decided is None or decided[0] != COMMITTED:  # else: our reply was lost
                # Aborted by a writer that waited on it too long, or by an older batch.
                await self._undo(ns, batch, done, intents)
                return False
        self._decided[batch] = COMMITTED
        await self._finish(ns, batch, prepared, intents)
        return True

    async def update_many(
        self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]
    ) -> R:
        """Read every key, decide, and apply the actions as one batch (optimistically).

        Every key gets a pending object, written conditionally on the object
        its record was read from (``If-Match``/``If-None-Match``), even a key
        the decision leaves alone: so no key read can change, or appear,
        before the commit makes the writes visible. A key changed by another
        writer between the read and the pending write aborts the attempt,
        and the whole decision runs again on fresh reads.
        """
        if self._readonly:
            raise self._read_only()
        wanted = sorted(set(keys))
        for key in wanted:
            self._name(ns, key)
        for attempt in range(self._retries):
            finished, result = await self._try_many(ns, wanted, now, decide)
            if finished:
                return result  # type: ignore[return-value]
            await self._io.sleep(random.uniform(0, min(0.005 * 2**attempt, 1.0)))
        raise BackendError(
            f"S3 {self.location}: gave up on a commit of {len(wanted)} keys in namespace "
            f"{ns!r} after {self._retries} attempts meeting concurrent writers "
            "(option conflict_retries); nothing was changed"
        )

    async def _try_many(
        self, ns: str, wanted: list[str], now: int, decide: MultiDecision[R]
    ) -> tuple[bool, R | None]:
        """One try of :meth:`update_many`: (True, result), or (False, None) to try again."""
        batch = new_nonce()
        intents = [self._layout.marker(ns, key, _INTENT + batch) for key in wanted]
        done: list[_Prepared] = []
        try:
            await self._io.each(lambda intent: self._io.put(intent, b""), intents)
            reads = await self._io.each(
                lambda key: self._settled(ns, key, now, (now, batch)), wanted
            )
            records: dict[str, Record | None] = {}
            for key, (_, body) in zip(wanted, reads, strict=True):
                stored = self._parse(body, self._name(ns, key))
                live = None
                if stored is not None and is_live(stored.record.expires_at, now):
                    live = stored.record
                records[key] = live
            actions, result = decide(records)
            prepared = await self._io.each(
                lambda item: self._lock_key(
                    ns, item[0], item[1], records[item[0]], actions.get(item[0]), now, batch, done
                ),
                list(zip(wanted, reads, strict=True)),
            )
        except Exception as exc:
            written = {p.key for p in done}
            unknown = [key for key in wanted if key not in written]
            await self._undo(ns, batch, done, intents, unknown, now)
            if isinstance(exc, _MovedError):
                return False, None  # a key changed since it was read: decide again
            raise
        if not await self._commit(ns, batch, prepared, done, intents):
            return False, None
        return True, result

    async def _settled(
        self, ns: str, key: str, now: int, mine: tuple[int, str]
    ) -> tuple[tuple[bytes, str] | None, bytes]:
        name = self._name(ns, key)
        return await self._settle(name, await self._fetch(name), now, writing=True, mine=mine)

    async def _lock_key(
        self,
        ns: str,
        key: str,
        read: tuple[tuple[bytes, str] | None, bytes],
        live: Record | None,
        action: Any,
        now: int,
        batch: str,
        done: list[_Prepared],
    ) -> _Prepared:
        """Write the pending object of one key of :meth:`update_many`, conditionally on ``read``.

        Raises :class:`_MovedError` if the object changed since it was read.
        """
        name = self._name(ns, key)
        got, prior_body = read
        stored = self._parse(prior_body, name)
        marker = None if stored is None else stored.marker
        fresh = False
        if isinstance(action, Write):
            new, marker, fresh = await self._body(
                ns, key, new_record(action, live, now), stored, new_nonce()
            )
        elif action is not None and stored is not None:
            new, marker = b"", None  # removed: a tombstone
        else:
            new = prior_body  # unchanged, but held until the commit
        body = wrap(Pending(batch, now, new, prior_body))
        try:
            etag = await self._io.put(
                name, body, create=got is None, etag=None if got is None else got[1]
            )
        except ConflictError:
            again = await self._fetch(name)
            if again is None or again[0] != body:
                if fresh and marker is not None:
                    await self._io.delete(self._layout.marker(ns, key, marker))
                raise _MovedError(key) from None
            etag = again[1]  # the reply was lost; the write landed
        self._remember(name, body, etag)
        prepared = _Prepared(key, name, etag, new, prior_body, stored, marker, fresh, None)
        done.append(prepared)
        return prepared

    async def _prepare(
        self,
        ns: str,
        key: str,
        now: int,
        step: Step,
        batch: str,
        mine: tuple[int, str],
        absent_first: bool,
        done: list[_Prepared],
    ) -> _Prepared:
        """Decide one key of a batch and write its pending object (conditionally)."""
        name = self._name(ns, key)
        got = self._seen.get(name)
        guessed = got is not None or absent_first
        if not guessed:
            got = await self._fetch(name)
        for attempt in range(self._retries):
            got, prior_body = await self._settle(name, got, now, writing=True, mine=mine)
            stored = self._parse(prior_body, name)
            live = None
            if stored is not None and is_live(stored.record.expires_at, now):
                live = stored.record
            action, result = step(live, stored)
            if action is None:
                if guessed:
                    guessed = False
                    got = await self._fetch(name)
                    continue
                return _Prepared(key, name, None, b"", prior_body, stored, None, False, result)
            new, marker, fresh = await self._body(ns, key, action, stored, new_nonce())
            body = wrap(Pending(batch, now, new, prior_body))
            try:
                etag = await self._io.put(
                    name, body, create=got is None, etag=None if got is None else got[1]
                )
            except ConflictError:
                guessed = False
                got = await self._fetch(name)
                if got is None or got[0] != body:
                    if fresh and marker is not None:
                        await self._io.delete(self._layout.marker(ns, key, marker))
                    await self._io.sleep(random.uniform(0, min(0.005 * 2**attempt, 1.0)))
                    continue
                etag = got[1]  # the reply was lost; the write landed
            self._remember(name, body, etag)
            prepared = _Prepared(key, name, etag, new, prior_body, stored, marker, fresh, result)
            done.append(prepared)
            return prepared
        raise BackendError(
            f"S3 {self.location}: gave up on key {key!r} in namespace {ns!r} after "
            f"{self._retries} conflicting writes by other clients (option conflict_retries)"
        )

    async def _replace(self, prepared: _Prepared, body: bytes) -> None:
        """Replace a batch's pending object by ``body``, unless a writer settled it already."""
        try:
            etag = await self._io.put(prepared.name, body, etag=prepared.etag)
        except ConflictError:
            return  # rewritten meanwhile, settled: it no longer names the batch
        self._remember(prepared.name, body, etag)

    async def _undo(
        self,
        ns: str,
        batch: str,
        done: list[_Prepared],
        intents: list[str],
        unknown: Sequence[str] = (),
        now: int = 0,
    ) -> None:
        """Abort ``batch`` (unless another writer did) and put the prior bodies back.

        ``done``: the pending objects written; ``unknown``: keys whose write
        failed without a reply (it may have landed), read back and settled
        here. An intent is removed only once its key's object no longer names
        the batch. Best effort: if the service fails here, the batch stays
        aborted (or undecided, hence invisible and aborted by the next writer
        that waits on it) and its objects are settled when next written.
        """
        commit = self._layout.batch(batch)
        try:
            with contextlib.suppress(ConflictError):
                await self._io.put(commit, ABORTED, create=True)
            decided = await self._io.get(commit)
            if decided is None or decided[0] != ABORTED:
                return  # our commit landed after all (its reply was lost): keep it
            self._decided[batch] = ABORTED
            await self._io.each(lambda p: self._replace(p, p.prior_body), done)
            settled = await self._io.each(
                lambda key: self._settle_object(ns, key, batch, now), list(unknown)
            )
            stuck = {
                self._layout.marker(ns, key, _INTENT + batch)
                for key, ok in zip(unknown, settled, strict=True)
                if not ok
            }
            # The expiry markers only the aborted new bodies named, and the intents.
            fresh = [
                self._layout.marker(ns, p.key, p.marker)
                for p in done
                if p.fresh and p.marker is not None
            ]
            await self._io.each(self._io.delete, [*fresh, *(i for i in intents if i not in stuck)])
            if not stuck:
                await self._io.delete(commit)  # no object names the batch any more
        except BackendError:
            pass

    async def _finish(
        self, ns: str, batch: str, prepared: list[_Prepared], intents: list[str]
    ) -> None:
        """Roll a committed batch forward: plain records, then markers and commit object gone.

        Best effort: the batch is committed whatever happens here; objects
        left pending are settled by their next writer or the cleanup sweep.
        """
        written = [p for p in prepared if p.etag is not None]
        try:
            await self._io.each(lambda p: self._replace(p, p.new), written)
            # Expiry markers only the replaced prior records named.
            stale = [
                self._layout.marker(ns, p.key, p.prior.marker)
                for p in written
                if p.prior is not None and p.prior.marker is not None and p.prior.marker != p.marker
            ]
            await self._io.each(self._io.delete, [*stale, *intents])
            # Every object is settled: none names the batch any more.
            await self._io.delete(self._layout.batch(batch))
        except BackendError:
            pass

    async def _names(
        self, ns: str, prefix: str, after: str | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(key, object meta) of every object of ``ns`` whose key starts with ``prefix``."""
        if self._closed:
            raise StoreClosedError(f"The store {self.location} is closed")
        directory = self._layout.data_dir(ns)
        base = directory + "/"
        code = escape(prefix)
        start = start_after(base + code) if code else None
        if after is not None:
            beyond = base + escape(after)
            start = beyond if start is None else max(start, beyond)
        async for page in self._io.pages(directory, start):
            for meta in page:
                rest = str(meta["path"])[len(base) :]
                where = in_range(rest, code)
                if where is None:
                    continue  # below the prefix (see start_after)
                if not where:
                    return
                yield unescape(rest), meta

    async def _markers(
        self, ns: str, prefix: str, after: str | None = None
    ) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
        """(key, marker id, meta) of the expiry markers of keys starting with ``prefix``.

        In key order (the marker separator sorts below every escaped
        character); with ``after``, only the markers of keys above it.
        """
        directory = self._layout.marker_dir(ns)
        base = directory + "/"
        code = escape(prefix)
        start = start_after(base + code) if code else None
        if after is not None:
            # Above every marker of ``after`` itself (ids are digits, "-" and hex).
            beyond = base + escape(after) + MARKER_SEPARATOR + "\U0010ffff"
            start = beyond if start is None else max(start, beyond)
        async for page in self._io.pages(directory, start):
            for meta in page:
                rest = str(meta["path"])[len(base) :]
                where = in_range(rest, code)
                if where is None:
                    continue  # below the prefix (see start_after)
                if not where:
                    return
                escaped, _, nonce = rest.partition(MARKER_SEPARATOR)
                yield unescape(escaped), nonce, meta

    async def _marked(self, ns: str, prefix: str) -> set[str]:
        return {key async for key, _, _ in self._markers(ns, prefix)}

    async def _live(
        self, ns: str, matcher: Matcher, now: int, after: str | None, values: bool
    ) -> AsyncIterator[tuple[str, Record | None]]:
        """Live keys matching ``matcher`` in key order (with their records if ``values``).

        Without values, the expiry markers are listed alongside the records
        (both in key order): a key whose markers all name a future instant is
        live (its record's expiry is one of them), and only a key with a
        marker that is due is read to check it.
        """
        if matcher.literal:
            key = matcher.prefix
            if after is None or key > after:
                record = await self.get_record(ns, key, now)
                if record is not None:
                    yield key, record if values else None
            return
        exact = matcher.match_all or matcher.prefix_only
        markers: Any = None
        # The next marker not yet passed, as (key, expiry); ("", 0) before the first.
        marked: tuple[str, int] | None = ("", 0)
        async for key, meta in self._names(ns, matcher.prefix, after):
            if meta["size"] == 0 or not (exact or matcher.match(key)):
                continue  # a tombstone, or not matching
            if values:
                record = await self.get_record(ns, key, now)
                if record is not None:
                    yield key, record
                continue
            if markers is None:
                markers = self._markers(ns, matcher.prefix, after)
            due = False
            while marked is not None and marked[0] <= key:
                if marked[0] == key and marked[1] <= now:
                    due = True
                found = await self._io.next(markers)
                marked = None if found is None else (found[0], marker_expiry(found[1]))
            if due and await self.get_record(ns, key, now) is None:
                continue  # expired (or deleted since the listing)
            yield key, None

    # -- reads --------------------------------------------------------------

    async def get(self, ns: str, key: str, now: int) -> Value | None:
        stored = await self._read(self._name(ns, key))
        if stored is None or not is_live(stored.record.expires_at, now):
            return None
        return stored.record.tag, stored.record.payload

    async def get_record(self, ns: str, key: str, now: int) -> Record | None:
        stored = await self._read(self._name(ns, key))
        if stored is None or not is_live(stored.record.expires_at, now):
            return None
        return stored.record

    async def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        rows: list[tuple[str, Value | None]] = []
        if limit is not None and limit <= 0:
            return rows
        async for key, record in self._live(ns, matcher, now, after, values):
            rows.append((key, None if record is None else (record.tag, record.payload)))
            if limit is not None and len(rows) >= limit:
                break
        return rows

    async def scan_records(
        self, ns: str, now: int, after: str | None, limit: int
    ) -> list[tuple[str, Record]]:
        # One GET per key (the default would GET the keys with an expiry twice).
        rows: list[tuple[str, Record]] = []
        async for key, record in self._live(ns, _ALL, now, after, True):
            assert record is not None
            rows.append((key, record))
            if len(rows) >= limit:
                break
        return rows

    async def count(self, ns: str, matcher: Matcher, now: int) -> int:
        found = 0
        async for _ in self._live(ns, matcher, now, None, False):
            found += 1
        return found

    async def namespaces(self, now: int) -> list[str]:
        """One walk over every namespace's objects, skipping a namespace once it is live.

        The tombstones of namespaces without a live key stream by 1000 per
        LIST page; the first non-empty object of a namespace is read (it may
        have expired, or belong to an undecided batch) and, if live, the walk
        starts again past the namespace: one GET and one LIST per live
        namespace, whatever it holds.
        """
        if self._closed:
            raise StoreClosedError(f"The store {self.location} is closed")
        base = self._layout.root + "d/"
        found: list[str] = []
        offset: str | None = None
        while True:
            beyond = None
            async for page in self._io.pages(self._layout.root + "d", offset):
                for meta in page:
                    if meta["size"] == 0:
                        continue  # a tombstone
                    space, _, key = str(meta["path"])[len(base) :].partition("/")
                    if await self.get_record(unescape(space), unescape(key), now) is not None:
                        found.append(unescape(space))
                        # Above every "<space>/..." name, below every later namespace
                        # (an escaped name holds no "/", and "0" follows "/").
                        beyond = base + space + "0"
                        break
                if beyond is not None:
                    break
            if beyond is None:
                return sorted(found)
            offset = beyond

    async def stats(self, ns: str, now: int) -> dict[str, Any]:
        total = active = with_ttl = 0
        marked = await self._marked(ns, "")
        async for key, meta in self._names(ns, "", None):
            if meta["size"] == 0:
                continue
            if key not in marked:
                total += 1
                active += 1
                continue
            stored = await self._read(self._name(ns, key))
            if stored is None:
                continue
            total += 1
            if is_live(stored.record.expires_at, now):
                active += 1
                with_ttl += stored.record.expires_at is not None
        return stats_dict(total, active, with_ttl)

    async def total_size(self, ns: str, now: int) -> int:
        total = 0
        async for _, record in self._live(ns, _ALL, now, None, True):
            assert record is not None
            total += payload_size(record.tag, record.payload)
        return total

    # -- writes -------------------------------------------------------------

    async def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        return await self._update(ns, key, now, decide, absent_first=False)

    async def _update(
        self, ns: str, key: str, now: int, decide: Decision[R], *, absent_first: bool
    ) -> R:
        result: R = await self._cas(ns, key, now, _step(decide, now), absent_first=absent_first)
        return result

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
        decide = decide_put(value, expires_at, meta, nx=nx, xx=xx, keep_ttl=keep_ttl)
        # setnx mostly meets an absent key: try the create first (one request).
        return await self._update(ns, key, now, decide, absent_first=nx)

    async def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        wanted = list(dict.fromkeys(keys))
        values = await self._io.each(lambda key: self.get(ns, key, now), wanted)
        return {key: value for key, value in zip(wanted, values, strict=True) if value is not None}

    async def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        latest = dict(items)
        for key in latest:
            self._name(ns, key)  # refuse an unusable key before writing anything
        steps = [
            (key, _step(decide_put(value, expires_at, KEEP), now)) for key, value in latest.items()
        ]
        # Batches mostly load new keys: try the create first (no GET).
        await self._batch(ns, steps, now, absent_first=True)

    async def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        latest = dict(items)
        for key in latest:
            self._name(ns, key)
        steps = [
            (key, _step(decide_put((w.tag, w.payload), w.expires_at, w.meta), now))
            for key, w in latest.items()
        ]
        await self._batch(ns, steps, now, absent_first=True)

    async def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            self._name(ns, key)
        live = await self._batch(ns, [(key, _delete_step) for key in wanted], now)
        return [key for key, was in zip(wanted, live, strict=True) if was]

    async def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        def step(live: Record | None, stored: Stored | None) -> tuple[Action, bool]:
            if live is None or (expires_at is None and live.expires_at is None):
                return None, False
            return live._replace(expires_at=expires_at), True

        result: bool = await self._cas(ns, key, now, step)
        return result

    async def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        doomed: list[str] = []
        if matcher.literal:
            doomed.append(matcher.prefix)
        else:
            exact = matcher.match_all or matcher.prefix_only
            async for key, meta in self._names(ns, matcher.prefix, None):
                if meta["size"] and (exact or matcher.match(key)):
                    doomed.append(key)
        live = await self._batch(ns, [(key, _delete_step) for key in doomed], now)
        return sum(map(bool, live))

    async def purge_expired(self, ns: str | None, now: int) -> int:
        if self._closed:
            raise StoreClosedError(f"The store {self.location} is closed")
        if self._readonly:
            raise self._read_only()
        if ns is None:
            folders = await self._io.folders(self._layout.root + "x")
            spaces = [unescape(f.rstrip("/").rpartition("/")[2]) for f in folders]
        else:
            spaces = [ns]
        removed = 0
        for space in spaces:
            by_key: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            async for key, nonce, meta in self._markers(space, ""):
                by_key.setdefault(key, []).append((nonce, meta))
            grace = MARKER_GRACE.total_seconds() * 1000
            # Intents per batch: seen in the listing, and removed here.
            intents: dict[str, int] = {}
            cleared: dict[str, int] = {}
            for key, found in by_key.items():
                markers = [(m, meta) for m, meta in found if not m.startswith(_INTENT)]
                for intent, meta in found:
                    if not intent.startswith(_INTENT):
                        continue
                    batch = intent[len(_INTENT) :]
                    intents[batch] = intents.get(batch, 0) + 1
                    # Left by a writer that died an hour ago: settle the key's
                    # object, after which no listing needs the intent.
                    if age_ms(meta, now) > grace and await self._settle_object(
                        space, key, batch, now
                    ):
                        await self._io.delete(self._layout.marker(space, key, intent))
                        cleared[batch] = cleared.get(batch, 0) + 1
                if all(marker_expiry(marker) > now for marker, _ in markers):
                    continue  # every expiry it may have is still ahead
                removed += bool(await self._cas(space, key, now, _purge_step))
                stored = await self._read(self._name(space, key))
                current = None if stored is None else stored.marker
                for marker, meta in markers:
                    # Left by a write that failed or a process that died: no record
                    # refers to it, and it is too old to belong to a write in flight.
                    if marker != current and age_ms(meta, now) > grace:
                        await self._io.delete(self._layout.marker(space, key, marker))
            for batch, count in cleared.items():
                # A batch writes all its intents when it starts (all in one
                # namespace): none is left, so no object names the batch.
                if count == intents[batch]:
                    await self._io.delete(self._layout.batch(batch))
        return removed

    async def _settle_object(self, ns: str, key: str, batch: str, now: int) -> bool:
        """Rewrite the pending object ``batch`` left on ``key`` as the body it settles to.

        True once the key's object no longer names ``batch`` (False: it kept
        changing under conflicting writers).
        """
        name = self._name(ns, key)
        async with self._locks[hash((ns, key)) % _STRIPES]:
            for _ in range(self._retries):
                got = await self._fetch(name)
                pending = None if got is None else unwrap(got[0], name)
                if pending is None or pending.batch != batch:
                    return True
                got, body = await self._settle(name, got, now, writing=True)
                pending = None if got is None else unwrap(got[0], name)
                if got is None or pending is None or pending.batch != batch:
                    return True  # settled meanwhile by another writer
                try:
                    self._remember(name, body, await self._io.put(name, body, etag=got[1]))
                except ConflictError:
                    continue
                return True
        return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._io.release()


def _step(decide: Decision[R], now: int) -> Step:
    """A decision of :mod:`keyshelf.records` as a step of :meth:`AsyncS3Backend._cas`."""

    def step(live: Record | None, stored: Stored | None) -> tuple[Action, Any]:
        write, result = decide(live)
        if isinstance(write, Write):
            return new_record(write, live, now), result
        if write is not None and stored is not None:
            # Any other action asks to remove the key: tombstoned like delete().
            return TOMBSTONE, result
        return None, result

    return step


def _delete_step(live: Record | None, stored: Stored | None) -> tuple[Action, bool]:
    # An expired record is tombstoned too (nothing else would remove it).
    return (None if stored is None else TOMBSTONE), live is not None


def _purge_step(live: Record | None, stored: Stored | None) -> tuple[Action, bool]:
    if stored is not None and live is None:
        return TOMBSTONE, True
    return None, False
