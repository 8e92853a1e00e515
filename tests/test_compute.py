"""get_or_set/memoize beyond the conformance kit: time passing, key stability, the hit path."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.compute import FRESH_UNTIL, LEASE_PREFIX, RELEASED, lease_key
from keyshelf.testing import FakeClock

STORES = ["memory://", "sqlite"]


def open_store(where: str, tmp_path: Path, clock: FakeClock) -> keyshelf.Store:
    url = f"sqlite:///{tmp_path / 's.db'}" if where == "sqlite" else where
    return keyshelf.open(url, clock=clock)


def stable_function(*args: Any, **kwargs: Any) -> None:
    """A module-level function whose cache keys are compared across interpreters."""


ARGUMENTS = "((1, 'a', {'x': [1, 2.5]}, frozenset({'p', 'q', 'r', 's'})), {'k': {'u', 'v', 'w'}})"


@pytest.mark.parametrize("where", STORES)
def test_stale_value_is_served_while_one_caller_refreshes(where: str, tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(where, tmp_path, clock) as kv:
        runs: list[str] = []

        def factory() -> str:
            runs.append("run")
            return f"v{len(runs)}"

        assert kv.get_or_set("r", factory, ttl=10, stale_ttl=60) == "v1"
        clock.advance(5)
        assert kv.get_or_set("r", factory, ttl=10, stale_ttl=60) == "v1"  # fresh
        clock.advance(6)  # past ttl, within ttl + stale_ttl
        assert kv.get("r") == "v1"  # a plain get sees the plain value
        # While another caller holds the lease, the stale value is served at once.
        kv.set(lease_key("r"), "other-caller-token", ttl=5)
        assert kv.get_or_set("r", factory, ttl=10, stale_ttl=60) == "v1"
        assert runs == ["run"]
        clock.advance(6)  # the other caller's lease expired: this one refreshes
        assert kv.get_or_set("r", factory, ttl=10, stale_ttl=60) == "v2"
        assert kv.get_metadata("r") == {FRESH_UNTIL: math.floor(clock.now * 1000) + 10_000}


@pytest.mark.parametrize("where", STORES)
def test_value_past_ttl_and_stale_ttl_is_a_miss(where: str, tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(where, tmp_path, clock) as kv:
        values = iter(["v1", "v2"])
        assert kv.get_or_set("r", lambda: next(values), ttl=10, stale_ttl=60) == "v1"
        clock.advance(71)
        assert not kv.exists("r")
        assert kv.get_or_set("r", lambda: next(values), ttl=10, stale_ttl=60) == "v2"


@pytest.mark.parametrize("where", STORES)
def test_memoize_stale_ttl(where: str, tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(where, tmp_path, clock) as kv:
        runs: list[int] = []

        @kv.memoize(ttl=10, stale_ttl=60)
        def f(x: int) -> int:
            runs.append(x)
            return x * len(runs)

        assert f(2) == 2
        clock.advance(11)
        assert f(2) == 4  # stale and the lease free: this caller refreshed
        assert runs == [2, 2]
        assert kv.get(f.cache_key(2)) == 4


@pytest.mark.parametrize("where", STORES)
def test_lease_expires_by_itself(where: str, tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(where, tmp_path, clock) as kv:
        kv.get_or_set("k", lambda: 1, lock_ttl=5)
        assert kv.keys() == ["k", f"{LEASE_PREFIX}k"]
        assert kv.get(lease_key("k")) == RELEASED
        clock.advance(6)
        assert kv.keys() == ["k"]
        assert kv.delete_expired() == 1


def test_hit_path_writes_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store("sqlite", tmp_path, clock) as kv:

        @kv.memoize()
        def f(x: int) -> int:
            return x

        kv.set(f.cache_key(1), 1)
        assert f(1) == 1
        assert kv.keys() == [f.cache_key(1)]  # no lease was taken for a hit
        assert kv.get_entry(f.cache_key(1)).version == 1  # type: ignore[union-attr]


def test_lease_key_of_a_long_key_fits() -> None:
    long_key = "k" * 255
    lease = lease_key(long_key)
    assert len(lease) <= 255 and lease.startswith(LEASE_PREFIX + "#")
    assert lease != lease_key("k" * 254)


def test_memoize_key_of_a_long_name_fits(tmp_path: Path) -> None:
    with keyshelf.open("memory://") as kv:

        def f() -> int:
            return 1

        f.__qualname__ = "q" * 300
        key = kv.memoize()(f).cache_key()
        assert len(key) <= 255 and key.startswith("memoize:#")


def test_cache_key_is_stable_across_python_runs() -> None:
    # Sets and frozensets iterate in hash order, which PYTHONHASHSEED changes:
    # a key built from hash() or iteration order would differ between runs.
    with keyshelf.open("memory://") as kv:
        args, kwargs = eval(ARGUMENTS)  # a literal of this file
        here = kv.memoize()(stable_function).cache_key(*args, **kwargs)
    script = (
        "import keyshelf, tests.test_compute as t\n"
        "args, kwargs = eval(t.ARGUMENTS)\n"
        "with keyshelf.open('memory://') as kv:\n"
        "    print(kv.memoize()(t.stable_function).cache_key(*args, **kwargs))\n"
    )
    root = Path(__file__).resolve().parents[1]
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script],
            check=False,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == here
    assert here.startswith("memoize:tests.test_compute.stable_function:")


def test_async_get_or_set_with_a_coroutine_factory_and_tasks() -> None:
    async def main() -> None:
        async with keyshelf.open_async("memory://") as kv:
            runs: list[int] = []

            async def factory() -> dict[str, int]:
                runs.append(1)
                await asyncio.sleep(0.01)
                return {"n": len(runs)}

            got = await asyncio.gather(*(kv.get_or_set("k", factory) for _ in range(10)))
            assert got == [{"n": 1}] * 10
            assert runs == [1]

    asyncio.run(main())


def test_sync_store_refuses_a_coroutine_factory() -> None:
    async def factory() -> int:
        return 1

    with keyshelf.open("memory://") as kv:
        with pytest.raises(keyshelf.InvalidArgumentError, match="open_async"):
            kv.get_or_set("k", factory)
        assert not kv.exists("k")
        assert kv.get(lease_key("k")) == RELEASED


def test_keys_built_earlier_never_answer_for_equal_values_of_other_types() -> None:
    # Built keys are remembered in-process; 1, 1.0, True, Decimal(1) and
    # (1,)/(1.0,) compare equal, yet each key must not depend on call order.
    def f(*args: Any) -> None:
        """Memoized twice below, so each wrapper starts with no keys built."""

    calls = [
        (1,),
        (1.0,),
        (True,),
        (Decimal(1),),
        ((1,),),
        ((1.0,),),
        (1, 2.0),
        (1.0, 2),
        (0.0,),
        (-0.0,),
        (0.0, 0),
        (-0.0, 0),
    ]
    with keyshelf.open("memory://") as kv:
        for typed in (False, True):
            forward = kv.memoize(typed=typed)(f)
            first = [forward.cache_key(*c) for c in calls]
            again = [forward.cache_key(*c) for c in calls]
            backward = kv.memoize(typed=typed)(f)
            reverse = [backward.cache_key(*c) for c in reversed(calls)][::-1]
            assert first == again == reverse
            if typed:
                assert len(set(first)) == len(calls)
            else:  # 1, 1.0 and True share a key; Decimal keeps its own
                assert first[0] == first[1] == first[2] != first[3]
                assert first[4] == first[5] and first[6] == first[7]
                assert first[8] == first[9] and first[10] == first[11]
