"""``ttl()`` never reads above the TTL given; a key never outlives its TTL by over 1 ms.

On every backend through both APIs, the read-through cache tier included. The
local backends run on a fake clock set to arbitrary fractional instants (the
old rounding read up to 1 ms above the TTL at most of them); the server-side
expiry backends run on the real clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyshelf.expiry import ttl_milliseconds

# TTLs with fractional milliseconds and awkward float roundings.
TTLS = st.one_of(
    st.floats(min_value=0.001, max_value=10_000, allow_nan=False, allow_infinity=False),
    st.sampled_from([2, 2.0005, 0.0015, 1.9999, 0.29, 0.001, 1.1, 3600, 0.3, 7.0000001]),
    st.integers(min_value=1, max_value=10**6),
)
# Clock readings: arbitrary sub-millisecond phases around today's epoch.
INSTANTS = st.floats(min_value=1.7e9, max_value=1.8e9, allow_nan=False)

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _given_seconds(ttl: Any) -> float:
    return ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)


@PROPERTY
@given(ttl=TTLS, instant=INSTANTS)
def test_ttl_never_reads_above_the_ttl_given(kv: Any, clock: Any, ttl: Any, instant: float) -> None:
    if not clock.server_clock:
        clock.now = instant
    for how in ("set", "setnx", "mset", "expire", "metadata"):
        key = f"k-{how}"
        kv.delete(key)
        if how == "set":
            kv.set(key, 1, ttl=ttl)
        elif how == "setnx":
            kv.setnx(key, 1, ttl=ttl)
        elif how == "mset":
            kv.mset({key: 1}, ttl=ttl)
        elif how == "expire":
            kv.set(key, 1)
            kv.expire(key, ttl)
        else:
            kv.set(key, 1, metadata={"ttl": ttl})
        left = kv.ttl(key)
        assert left == -1 or 0 < left <= _given_seconds(ttl), (how, ttl, left)
        entry = kv.get_entry(key)
        if entry is not None and not clock.server_clock:
            # The stored instant is no later than the exact one.
            assert entry.expires_at.timestamp() <= instant + _given_seconds(ttl) + 1e-6


@PROPERTY
@given(ttl=TTLS, instant=INSTANTS)
def test_ttl_keeps_below_the_ttl_as_time_passes(
    kv: Any, clock: Any, ttl: Any, instant: float
) -> None:
    if clock.server_clock:
        kv.set("k", 1, ttl=ttl)
        for _ in range(3):
            left = kv.ttl("k")
            assert left == -1 or 0 < left <= _given_seconds(ttl)
        return
    clock.now = instant
    kv.set("k", 1, ttl=ttl)
    for step in (0.0, 0.0001, 0.0004, 0.0007):
        clock.now = instant + step
        left = kv.ttl("k")
        assert left == -1 or 0 < left <= _given_seconds(ttl), (step, ttl, left)


@PROPERTY
@given(ttl=st.floats(min_value=0.001, max_value=5), instant=INSTANTS)
def test_a_key_never_outlives_its_ttl_by_over_a_millisecond(
    kv: Any, clock: Any, ttl: float, instant: float
) -> None:
    if clock.server_clock:  # once is enough on a real clock (below)
        return
    clock.now = instant
    kv.set("k", 1, ttl=ttl)
    clock.now = instant + ttl + 0.001
    assert kv.get("k") is None
    assert kv.ttl("k") == -1
    assert not kv.exists("k")


def test_a_key_expires_on_time_on_a_real_clock(kv: Any, clock: Any) -> None:
    # On a real clock, time.sleep sleeps at least as long as asked, so the
    # key must be gone; the fake clock moves by exactly that much.
    kv.set("k", 1, ttl=0.05)
    clock.advance(0.051)
    assert kv.get("k") is None
    assert kv.ttl("k") == -1


def test_sub_millisecond_ttl_gives_an_expired_key(kv: Any) -> None:
    assert kv.set("k", 1, ttl=0.0005) is True
    assert kv.get("k") is None
    assert kv.ttl("k") == -1
    assert kv.setnx("k", 2) is True
    assert kv.get("k") == 2


def test_timedelta_ttl_reads_at_most_itself(kv: Any) -> None:
    given = timedelta(seconds=2, microseconds=500)
    kv.set("k", 1, ttl=given)
    assert 0 < kv.ttl("k") <= given.total_seconds()


def test_ttl_milliseconds_never_rounds_up() -> None:
    for seconds in (0.29, 0.3, 1.1, 2.0005, 0.0015, 1.9999, 7.0000001, 0.0009):
        whole = ttl_milliseconds(seconds)
        assert whole / 1000 <= seconds
        assert seconds - whole / 1000 < 0.001 + 1e-12
