"""AsyncWatch: the iterator behind ``kv.watch()`` (source of ``_watch_sync.py``).

``tools/async_to_sync.py`` generates the sync :class:`Watch` from this file;
edit this one and run ``make generate``.

The backend's change log is the truth and its doorbell only a hint: the watch
reads :meth:`~keyshelf.backends.base.Backend.changes` after the last revision
it delivered, and when that is empty waits on
:meth:`~keyshelf.backends.base.Backend.wait_changes` (at most
:data:`WAIT_SLICE` seconds at a time) and reads again. So a change is
delivered exactly once and in revision order, whatever the doorbell does: a
lost or spurious ring only costs a read. Replay (``since=N``) and live
following are the same loop, so there is no seam between them.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING

from .changes import READ_BATCH, SET, Change, ChangeEvent
from .errors import StoreClosedError
from .expiry import to_datetime
from .patterns import Matcher

if TYPE_CHECKING:
    from ._store_async import AsyncStore

#: Longest single wait on the backend's doorbell: a watch notices its own
#: close() (or a store closed elsewhere) within this many seconds at worst.
WAIT_SLICE = 1.0


class AsyncWatch:
    """The changes of one namespace matching a pattern, in revision order.

    An async iterator of :class:`~keyshelf.changes.ChangeEvent` (``async
    for``), and an async context manager that closes it. It ends when closed
    (:meth:`aclose`, leaving ``async with``) or when its store is closed; a
    cancelled task releases what it waited on. Raises
    :class:`~keyshelf.errors.ChangesCompactedError` if changes it has not
    delivered yet were pruned from the history.
    """

    def __init__(
        self,
        store: AsyncStore,
        matcher: Matcher | None,
        since: int | None,
        prev: bool,
    ) -> None:
        self._store = store
        self._backend = store._backend
        self._ns = store._ns
        self._matcher = matcher
        self._after = since
        self._prev = prev
        self._buffer: deque[ChangeEvent] = deque()
        self._closed = False
        self._started = False
        # True once a read found nothing new: the next read checks the revision.
        self._idle = False

    async def _start(self) -> int:
        """Check that the feed is on; fix the starting revision of a watch from now."""
        if not self._started:
            revision = await self._store._feed_revision()
            if self._after is None:
                self._after = revision
            self._started = True
        assert self._after is not None
        return self._after

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> ChangeEvent:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._closed:
                raise StopAsyncIteration
            try:
                after = await self._start()
                now = self._store._now()
                # After a read that found nothing, read the revision first:
                # when the store moved on in other namespaces only, changes()
                # stays empty while the doorbell rings at once for a revision
                # this watch is never given, and the loop would spin. Every
                # change up to the revision read has committed before the
                # changes() that follows, so moving past it when that read is
                # empty skips nothing.
                latest = await self._backend.revision(now, ns=self._ns) if self._idle else None
                changes = await self._backend.changes(self._ns, after, READ_BATCH, now)
                if not changes:
                    if latest is not None and latest > after:
                        self._after = after = latest
                    self._idle = True
                    await self._backend.wait_changes(after, WAIT_SLICE, ns=self._ns)
                    continue
                self._idle = False
            except StoreClosedError:
                # close() of the store ends every watch on it.
                self._closed = True
                raise StopAsyncIteration from None
            self._after = changes[-1].revision
            self._deliver(changes)

    def _deliver(self, changes: list[Change]) -> None:
        matcher = self._matcher
        decode = self._store._codec.decode
        for change in changes:
            if matcher is not None and not matcher.match(change.key):
                continue
            value = change.value
            prev = change.prev if self._prev else None
            self._buffer.append(
                ChangeEvent(
                    change.revision,
                    change.type,
                    change.key,
                    change.ns,
                    None if value is None else decode(value[0], value[1]),
                    change.version if change.type == SET else None,
                    to_datetime(change.expires_at),
                    None if prev is None else decode(prev[0], prev[1]),
                )
            )

    async def aclose(self) -> None:
        """End the watch: iteration stops (the changes already read are dropped)."""
        self._closed = True
        self._buffer.clear()

    async def __aenter__(self) -> AsyncWatch:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
