"""The async fast path's shared vocabulary: what an inline attempt may signal.

The async API reaches the local backends (SQLite, file, memory) through
:class:`~keyshelf.backends._bridge.AsyncBridge`. A backend gives the bridge a
*fast path*: for some primitives, a function that runs on the event-loop
thread itself and either finishes quickly or raises :class:`WouldBlock`
before it has changed anything, in which case the bridge runs the ordinary
primitive in its worker thread. Each backend's module states which primitives
it offers inline and when they give up (``_sqlite_fast.py``, ``_file_fast.py``;
the memory backend runs everything inline).

A task that keeps calling inline primitives would never give the loop back
(no call awaits anything), so the bridge also yields to the loop once every
:data:`SLICE` seconds of inline work (see ``docs/design.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: Seconds of inline work per loop iteration after which the bridge lets the
#: event loop run other tasks (an ``asyncio.sleep(0)`` before the next inline
#: call). Shared by every task of one store: with n tasks calling it, one loop
#: iteration runs about SLICE in all (at least one call per task: the next
#: slice is shortened by what the waiting tasks' calls ran past it). Each turn costs ~4-10 µs
#: (a loop iteration: an epoll call, the callbacks): 0.25 ms keeps that near
#: 2 % of inline work (0.1 ms cost a SQLite set ~2 µs more, of ~28, measured
#: under load), and a waiting task still gets its turn within 0.25 ms plus
#: one call per other task.
SLICE = 0.00025


class WouldBlock(Exception):  # noqa: N818 (a signal between bridge and backend, not an error)
    """Raised by an inline attempt that would have to wait; it changed nothing.

    Never reaches the user: the bridge catches it and runs the primitive in
    its worker thread instead (where waiting does not stall the loop).
    """


class Busy(WouldBlock):
    """Raised by an inline attempt that found the database locked by another connection.

    Like :class:`WouldBlock`, it changed nothing. The lock is usually held for
    one short write (tens of µs), so the bridge tries the call inline again
    after the sleeps of :data:`BUSY_RETRIES` (the loop runs other tasks
    meanwhile) before it hands it to a worker thread.
    """


#: Seconds the bridge sleeps on the event loop before each new inline attempt
#: of a call that raised :class:`Busy` (the first sleeps of SQLite's own busy
#: handler, 1, 2 and 5 ms); after the last, the call goes to a worker thread,
#: which waits for the lock as the sync API does. A worker thread that runs
#: a call needs the GIL for its Python parts and hands it back and forth with
#: the loop's thread, which is one cause of stalls under contention.
BUSY_RETRIES = (0.001, 0.002, 0.005)


#: Primitive name -> the function that tries it inline (same arguments).
FastPath = Mapping[str, Callable[..., Any]]
