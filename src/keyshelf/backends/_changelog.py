"""The in-process change log of the memory backend (docs/changes.md).

A :class:`ChangeLog` holds the recorded changes of one store in revision
order, with the retention of ``history=``. The backend's record tables
(:class:`~._table.RecordTable`) report every stored and removed record to a
:class:`TableFeed` bound to their namespace, which turns it into a
:class:`~keyshelf.changes.Change`; so every write path that goes through a
table records, evictions included, with no list of operations to keep up to
date. Calls happen under the backend's lock, which also orders revisions in
commit order.

Types: a removal is ``"delete"``, or ``"expire"`` while :attr:`ChangeLog.expiring`
is set (the backend's purge); a stored record is a ``"set"``. ``prev`` is the
removed record's value, or the replaced record's value if it was live at the
write (a record expired at the write's ``updated_at`` counts as absent).
Duration retention is judged by the latest write time the log has seen.

Pruning is amortised: the log holds up to ``max(count // 10, 100)`` changes
over a count bound before it drops the oldest ones in one slice.

Cost: a change is one :class:`Change` built with its revision and three list
appends; the doorbell (:class:`Doorbell`) wakes the condition only when a
watcher waits on it, so a store that nobody watches pays no ``notify_all``.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..changes import DELETE, EXPIRE, SET, Change
from ..errors import ChangesCompactedError
from ..records import Record


class Doorbell:
    """The backend's condition, with a count of the watchers waiting on it.

    Guarantee: no wakeup is missed. A watcher calls :meth:`wait` holding the
    condition's lock (as ``Condition.wait`` requires), so it counts itself in
    before the wait releases the lock, and out after the wait has taken it
    back; a writer records and calls :meth:`notify_all` holding the same
    lock. So a writer that sees ``waiting == 0`` knows that no watcher is
    between its check of the revision and its wakeup: every watcher that
    checked before this write is counted, every one that checks after it
    sees the new revision.
    """

    __slots__ = ("_condition", "waiting")

    def __init__(self, condition: threading.Condition) -> None:
        self._condition = condition
        self.waiting = 0

    def wait(self, timeout: float | None = None) -> bool:
        """``Condition.wait``, counted (the caller holds the condition's lock)."""
        self.waiting += 1
        try:
            return self._condition.wait(timeout)
        finally:  # Condition.wait takes the lock back before it returns or raises
            self.waiting -= 1

    def notify_all(self) -> None:
        """Wake every waiting watcher; nothing to do (no call at all) when none waits."""
        if self.waiting:
            self._condition.notify_all()


class ChangeLog:
    """Recorded changes of one store, newest last; not thread-safe (the caller locks)."""

    def __init__(self, condition: threading.Condition) -> None:
        self.enabled = False
        self.history_count: int | None = None
        self.history_ms: int | None = None
        self.revision = 0
        self.pruned_through = 0
        #: True while the backend removes expired records (purge): removals are "expire".
        self.expiring = False
        self._changes: list[Change] = []
        self._revisions: list[int] = []
        self._times: list[int] = []
        # Inside group(): the revision of the group's changes once its first is
        # recorded; None otherwise (each change takes the next revision).
        self._group: int | None = None
        self._grouping = False
        self._last_time = 0
        # The log's length past which a count bound prunes (none: never).
        self._count_limit: float = math.inf
        #: What watchers of this log wait on (``condition.wait(timeout)``).
        self.condition = Doorbell(condition)
        self._listeners: list[Callable[[], None]] = []

    def enable(self, history_count: int | None, history_ms: int | None) -> None:
        self.enabled = True
        self.history_count = history_count
        self.history_ms = history_ms
        self._count_limit = (
            math.inf if history_count is None else history_count + max(history_count // 10, 100)
        )

    # -- recording ----------------------------------------------------------------

    @contextmanager
    def group(self) -> Iterator[None]:
        """Every change recorded inside shares one revision (a multi-key commit)."""
        self._group = None
        self._grouping = True
        try:
            yield
        finally:
            self._group = None
            self._grouping = False
        self._ring()

    def record(self, ns: str, key: str, old: Record | None, new: Record | None) -> None:
        """Append the change of ``key`` from ``old`` to ``new`` (None: removed)."""
        if new is None and old is None:
            return
        revision = self._group
        if revision is None:
            revision = self.revision = self.revision + 1
            if self._grouping:
                self._group = revision
        if new is None:
            assert old is not None
            kind = EXPIRE if self.expiring else DELETE
            change = Change(revision, kind, ns, key, None, None, None, (old.tag, old.payload))
        else:
            prev = None
            if old is not None and (old.expires_at is None or old.expires_at > new.updated_at):
                prev = (old.tag, old.payload)
            change = Change(
                revision, SET, ns, key, (new.tag, new.payload), new.version, new.expires_at, prev
            )
            self._last_time = max(self._last_time, new.updated_at)
        self._changes.append(change)
        self._revisions.append(revision)
        self._times.append(self._last_time)
        ms = self.history_ms
        if len(self._changes) > self._count_limit or (
            ms is not None and self._times[0] < self._last_time - ms
        ):
            self._prune(self._last_time)
        if not self._grouping:
            self._ring()

    def _ring(self) -> None:
        self.condition.notify_all()
        for listener in self._listeners:
            listener()

    def _prune(self, now: int) -> None:
        cut = 0
        size = len(self._changes)
        if self.history_count is not None and size > self._count_limit:
            cut = size - self.history_count
        if self.history_ms is not None and self._times and self._times[0] < now - self.history_ms:
            # Amortised like the count: only once a tenth of the log (or 100) is due.
            due = bisect_left(self._times, now - self.history_ms)
            if due >= max(size // 10, 100) or due == size:
                cut = max(cut, due)
        if cut:
            # Never split a revision: drop whole revisions only.
            cut = bisect_right(self._revisions, self._revisions[cut - 1])
            self.pruned_through = self._revisions[cut - 1]
            del self._changes[:cut], self._revisions[:cut], self._times[:cut]

    # -- reading ------------------------------------------------------------------

    def read(self, ns: str | None, after: int, limit: int) -> list[Change]:
        """Changes after revision ``after`` (of ``ns`` if given); whole revisions."""
        if after < self.pruned_through:
            raise ChangesCompactedError(
                f"Changes after revision {after} were pruned from the history; "
                f"the oldest revision kept is {self.pruned_through + 1}",
                oldest=self.pruned_through + 1,
            )
        found: list[Change] = []
        changes = self._changes
        for index in range(bisect_right(self._revisions, after), len(changes)):
            change = changes[index]
            if len(found) >= limit and change.revision != found[-1].revision:
                break
            if ns is None or change.ns == ns:
                found.append(change)
        return found

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` (under the backend's lock) after every recorded write.

        Returns the function that removes it. The async bridge uses it to
        wake event-loop watchers without a thread.
        """
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def close(self) -> None:
        self._ring()


class TableFeed:
    """What a :class:`~._table.RecordTable` of namespace ``ns`` tells the log."""

    __slots__ = ("log", "ns")

    def __init__(self, log: ChangeLog, ns: str) -> None:
        self.log = log
        self.ns = ns

    def __call__(self, key: str, old: Record | None, new: Record | None) -> None:
        self.log.record(self.ns, key, old, new)
