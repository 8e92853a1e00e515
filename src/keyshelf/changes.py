"""The change feed's records: what backends return and what ``kv.watch()`` yields.

Pure definitions, no I/O. A backend with a change feed (``change_feed =
True``, see :mod:`keyshelf.backends.base`) records one :class:`Change` per key
for every write that changes a key, in the same atomic step as the write, with
a store-wide *revision*: strictly increasing in commit order, shared by every
change of one multi-key commit, never reused or lowered (not necessarily
contiguous). Values are the encoded ``(tag, payload)`` pairs of
:mod:`keyshelf.records`; the store decodes them into :class:`ChangeEvent`.

The feed is off until switched on per store with the ``history=`` open option
(:func:`parse_history`), which also sets the retention: a count of changes or
an age. docs/changes.md states the semantics for users.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from ._show import show
from .errors import InvalidURLError
from .records import Value

#: The change types.
SET = "set"
DELETE = "delete"
EXPIRE = "expire"
TYPES = (SET, DELETE, EXPIRE)

#: Seconds between two looks at the store by the default doorbell
#: (``wait_changes`` of a backend that has no means of its own).
FEED_POLL_INTERVAL = 0.05

#: Changes a watch reads from the backend per call.
READ_BATCH = 1000

#: The longest retention ``history=`` accepts as a count (a billion changes).
MAX_HISTORY_COUNT = 10**9


class Change(NamedTuple):
    """One recorded change as a backend returns it (encoded values).

    ``value``, ``version`` and ``expires_at`` (epoch milliseconds) describe
    the key after the change; they are None for ``"delete"`` and
    ``"expire"``. ``prev`` is the encoded value before the change, None if the
    key was absent (missing or expired).
    """

    revision: int
    type: str
    ns: str
    key: str
    value: Value | None
    version: int | None
    expires_at: int | None
    prev: Value | None


class ChangeEvent(NamedTuple):
    """One change delivered by ``kv.watch()``.

    ``type`` is ``"set"`` (a write of the value, the user metadata or the
    expiry: a change of TTL alone is a ``"set"`` with the same value and
    version), ``"delete"`` or ``"expire"`` (the store removed the key because
    it had expired). ``value`` and ``version`` are the key's after the change
    (None for deletions); ``expires_at`` is an aware UTC datetime or None;
    ``prev`` is the value before the change (None if the key was absent), and
    is filled only for a watch opened with ``prev=True``.
    """

    revision: int
    type: str
    key: str
    namespace: str
    value: Any
    version: int | None
    expires_at: datetime | None
    prev: Any


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_history(value: Any) -> tuple[int | None, int | None]:
    """The ``history=`` option as ``(count, milliseconds)``, exactly one of them set.

    An int (or a string of digits) keeps that many latest changes; a
    :class:`~datetime.timedelta` or a string ``"<number><unit>"`` with unit
    ``ms``, ``s``, ``m``, ``h`` or ``d`` keeps changes younger than that.
    Anything else, zero or negative, raises :class:`InvalidURLError`.
    """
    if isinstance(value, bool):
        raise InvalidURLError(
            f"Option history must be a count of changes or a duration, got {show(value)}"
        )
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        count = int(value)
        if not 0 < count <= MAX_HISTORY_COUNT:
            raise InvalidURLError(
                f"Option history must be between 1 and {MAX_HISTORY_COUNT} changes, "
                f"got {show(value)}"
            )
        return count, None
    ms: float | None = None
    if isinstance(value, timedelta):
        ms = value.total_seconds() * 1000
    elif isinstance(value, str):
        found = _DURATION.match(value)
        if found is not None:
            ms = float(found.group(1)) * _UNIT_MS[found.group(2)]
    if ms is None:
        raise InvalidURLError(
            "Option history must be a count of changes (an int) or a duration "
            f"('30s', '15m', '2h', '7d', or a timedelta), got {show(value)}"
        )
    if not 1 <= ms <= 1e9 * 1000:
        raise InvalidURLError(f"Option history must be between 1 ms and 1e9 s, got {show(value)}")
    return None, int(ms)
