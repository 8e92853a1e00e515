"""TTL arithmetic and the clock (spec section 7). Pure, no I/O.

Instants are stored as integer milliseconds since the Unix epoch. A key is
expired when ``now_ms >= expires_at``. A TTL is turned into an instant by
rounding *up* to the next millisecond, so a positive TTL can never produce a
key that is already expired, and a fresh key's remaining TTL reads at most
1 ms above what was given (the spec allows exactly that).

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
    """The clock's current instant in whole milliseconds (rounded down)."""
    return math.floor(clock() * 1000)


def expires_at(clock: Clock, ttl: object) -> int:
    """Absolute expiry (ms) for a TTL given now; validates the TTL."""
    return math.ceil((clock() + ttl_seconds(ttl)) * 1000)


def optional_expires_at(clock: Clock, ttl: object) -> int | None:
    """Like :func:`expires_at`, but ``None`` for ``ttl=None`` (no expiry)."""
    return None if ttl is None else expires_at(clock, ttl)


def remaining(expires: int | None, clock: Clock) -> float | None:
    """Remaining seconds until ``expires`` (ms), ``None`` if it never expires."""
    if expires is None:
        return None
    return max(expires / 1000 - clock(), 0.0)


def to_datetime(ms: int | None) -> datetime | None:
    """An aware UTC datetime for an instant in ms (``None`` stays ``None``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
