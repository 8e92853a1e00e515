"""TTLs on the server backends (Redis, PostgreSQL) never read above what was given.

The rules, as on every backend: a TTL becomes whole milliseconds, rounded
down; a key lives that long on the server's clock and no longer; ``ttl()``
right after ``set(k, v, ttl=t)`` reads in ``(0, t]``; a TTL below 1 ms gives
a key that is already expired (the write is invisible: ``ttl()`` is -1).

These servers expire keys by their own (real) clock, so time moves during a
check: a key with a TTL of a few milliseconds may legitimately be gone by
the time ``ttl()`` asks. A reading of -1 is accepted only when at least the
TTL (in whole ms, less the 1 ms of the server clock's resolution) has passed
since ``set`` was called; 0 (a live key with no time left) never.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import keyshelf

from ..conftest import BACKENDS

SERVERS = [name for name in ("redis", "postgres") if name in BACKENDS]

# Fractional milliseconds around the boundaries, sub-millisecond TTLs, whole seconds.
TTLS = st.one_of(
    st.floats(min_value=1e-6, max_value=0.01),
    st.floats(min_value=0.01, max_value=5.0),
    st.integers(min_value=1, max_value=100_000).map(lambda ms: ms / 1000 + 0.0005),
    st.integers(min_value=1, max_value=5).map(float),
)


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=SERVERS)
def calls(
    request: pytest.FixtureRequest, api: str, tmp_path: Path
) -> Iterator[tuple[Callable[..., Any], Callable[[str], Any], Callable[[str], Any]]]:
    """(set, ttl, get) of a fresh store on the server, through one API."""
    factory = BACKENDS[request.param][0]
    with factory(tmp_path) as (url, options):
        if api == "sync":
            with keyshelf.open(url, **options) as kv:
                yield kv.set, kv.ttl, kv.get
            return
        loop = asyncio.new_event_loop()
        akv = keyshelf.open_async(url, **options)
        try:

            def run(name: str) -> Callable[..., Any]:
                return lambda *a, **k: loop.run_until_complete(getattr(akv, name)(*a, **k))

            yield run("set"), run("ttl"), run("get")
        finally:
            loop.run_until_complete(akv.aclose())
            loop.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(t=TTLS)
@example(t=2.0005)
@example(t=0.0015)
@example(t=1.9999)
@example(t=2.0)
@example(t=0.001)
@example(t=0.0009999)
@example(t=0.0005)
def test_ttl_right_after_set_is_within_the_ttl_given(calls: Any, t: float) -> None:
    set_, ttl, get = calls
    whole_ms = math.floor(t * 1000)
    started = time.monotonic()
    assert set_("k", "v", ttl=t) is True
    left = ttl("k")
    elapsed = time.monotonic() - started
    if whole_ms == 0:
        # Below 1 ms: the key is already expired, the write invisible.
        assert left == -1
        assert get("k") is None
        return
    if left == -1:
        # Gone already: only once its whole lifetime has passed.
        assert elapsed >= whole_ms / 1000 - 0.001, (t, elapsed)
        return
    assert left is not None
    assert 0 < left <= t, (t, left)
    assert left <= whole_ms / 1000, (t, left)  # whole milliseconds, rounded down


@pytest.mark.parametrize("skew", [-30.0, 30.0])
@pytest.mark.parametrize("kind", SERVERS)
def test_ttl_comes_from_the_servers_clock(kind: str, skew: float, tmp_path: Path) -> None:
    # A client whose clock is 30 s off: the server still decides, and ttl()
    # (asked of the server) still reads within the TTL given, never 30 s more
    # or less; the key lives its TTL on the server and every read agrees.
    factory = BACKENDS[kind][0]
    with (
        factory(tmp_path) as (url, options),
        keyshelf.open(url, clock=lambda: time.time() + skew, **options) as kv,
    ):
        kv.set("k", 1, ttl=5)
        assert 4 < kv.ttl("k") <= 5
        assert kv.get("k") == 1
        entry = kv.get_entry("k")
        assert entry is not None and entry.value == 1
        # The instant is the server's: about 5 s from the server's now.
        assert abs(entry.expires_at.timestamp() - (time.time() + 5)) < 2
        kv.expire("k", 1.0)
        assert 0 < kv.ttl("k") <= 1.0
        time.sleep(1.05)
        assert kv.get("k") is None and kv.ttl("k") == -1
