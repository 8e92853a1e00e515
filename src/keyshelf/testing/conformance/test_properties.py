"""Property-based round trips and concurrency, on every backend through both APIs."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
import uuid
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(),
    st.decimals(),
    st.uuids(),
)
HASHABLE = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.binary())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.dictionaries(HASHABLE, inner, max_size=3),
        st.frozensets(HASHABLE, max_size=3),
        st.sets(HASHABLE, max_size=3),
    ),
    max_leaves=10,
)


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (nan equals nan, -0.0 keeps its sign)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, Decimal):
        return (a.is_nan() and b.is_nan()) or str(a) == str(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (dt.datetime, dt.time)):
        return bool(a == b and a.tzinfo == b.tzinfo and a.fold == b.fold)
    return bool(a == b)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=VALUES)
def test_any_supported_value_round_trips(kv: Any, value: Any) -> None:
    kv.set("k", value)
    assert same(kv.get("k"), value)
    assert same(kv.get_many(["k"])["k"], value)


def test_uuid_and_decimal_examples(kv: Any) -> None:
    values = [uuid.UUID(int=5), Decimal("1.10"), Decimal("-0"), Decimal("NaN")]
    for number, value in enumerate(values):
        kv.set(f"k{number}", value)
        assert same(kv.get(f"k{number}"), value)


def test_concurrent_increments_lose_nothing(kv: Any) -> None:
    if getattr(kv, "api", "sync") == "async":
        store, loop = kv._store, kv._loop

        async def burst() -> None:
            await asyncio.gather(*(store.increment("counter") for _ in range(400)))

        loop.run_until_complete(burst())
        assert kv.get("counter") == 400
        return

    def work() -> None:
        for _ in range(100):
            kv.increment("counter")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kv.get("counter") == 800
