"""TTL arithmetic and the clock. Pure, no I/O.

Instants are stored as integer milliseconds since the Unix epoch, and a key
is expired when ``now_ms >= expires_at``, where ``now_ms`` is the clock read
and rounded *down* to a whole millisecond. A TTL is kept in whole
milliseconds, rounded *down* (:func:`ttl_milliseconds`), and added to the
``now_ms`` of the same clock reading. Two promises follow, as in Redis:

* ``ttl()`` never reads above the TTL that was given: it reports
  ``(expires_at - now_ms) / 1000`` for a later ``now_ms``, which is at most
  the rounded-down TTL;
* a key never outlives its TTL: it expires at ``now_ms + ttl_ms``, which is
  no later than the exact instant ``clock() + ttl`` (it may expire up to
  2 ms before it, by the two roundings). A TTL under 1 ms is 0 whole
  milliseconds: such a key is expired as soon as it is written.

The clock is any zero-argument callable returning seconds since the epoch as
a float (``time.time`` by default); tests inject a fake one to move time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ._show import show
from .errors import InvalidTTLError

Clock = Callable[[], float]
TTL = int | float | timedelta

system_clock: Clock = time.time


def ttl_seconds(ttl: object) -> float:
    """Validate a TTL argument and return it in seconds.

    Accepts a positive, finite ``int``/``float`` or a positive ``timedelta``.
    Zero, negative values, ``nan``, infinities, ``bool`` and other types raise
    :class:`InvalidTTLError` (message ``TTL must be positive`` where that is
    the problem).
    """
    kind = type(ttl)
    if kind is int or kind is float:
        if kind is int and not -MAX_TTL_SECONDS <= ttl <= MAX_TTL_SECONDS:  # type: ignore[operator]
            # float() of such an int can overflow: refuse it before converting.
            if ttl < 0:  # type: ignore[operator]
                raise InvalidTTLError(f"TTL must be positive, got {show(ttl)}")
            raise InvalidTTLError(f"TTL must be at most {MAX_TTL_SECONDS} seconds, got {show(ttl)}")
        seconds = float(ttl)  # type: ignore[arg-type]
    elif isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif kind is bool:
        raise InvalidTTLError("TTL must be a number of seconds or a timedelta, not a bool")
    else:
        raise InvalidTTLError(
            f"TTL must be a number of seconds or a timedelta, not {kind.__name__}"
        )
    if math.isnan(seconds):
        raise InvalidTTLError("TTL must be positive, not nan")
    if seconds <= 0:
        raise InvalidTTLError(f"TTL must be positive, got {show(ttl)}")
    if math.isinf(seconds):
        raise InvalidTTLError("TTL must be finite, not inf")
    if seconds > MAX_TTL_SECONDS:
        raise InvalidTTLError(f"TTL must be at most {MAX_TTL_SECONDS} seconds, got {show(ttl)}")
    return seconds


# About 290,000 years: keeps every instant inside a signed 64-bit millisecond
# column and inside datetime's range.
MAX_TTL_SECONDS = 9_000_000_000_000


def now_ms(clock: Clock) -> int:
    """The clock's current instant in whole milliseconds (rounded down).

    Every reading of "now" by a store goes through here, so the instant a TTL
    is added to and the instant liveness is checked at are rounded alike.
    """
    return math.floor(clock() * 1000)


def ttl_milliseconds(ttl: object) -> int:
    """Validate a TTL argument and return it in whole milliseconds, rounded down.

    The result ``n`` satisfies ``n / 1000 <= seconds`` as Python floats, so a
    remaining time computed as ``m / 1000`` with ``m <= n`` can never read above
    the TTL given, whatever the float rounding of ``seconds * 1000``. It is 0
    for a TTL under one millisecond.
    """
    seconds = ttl_seconds(ttl)
    whole = math.floor(seconds * 1000)
    if whole / 1000 > seconds:  # seconds * 1000 was rounded up to an integer
        whole -= 1
    return whole


def expires_at(now: int, ttl: object) -> int:
    """Absolute expiry (ms) of a TTL counted from ``now`` (ms); validates the TTL."""
    return now + ttl_milliseconds(ttl)


def to_datetime(ms: int | None) -> datetime | None:
    """An aware UTC datetime for an instant in ms (``None`` stays ``None``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
