"""A hypothesis state machine: every backend and API against a plain dict model.

The model keeps (value, expires_at) per key and a fake clock; the store under
test gets the same clock. After every step the store's visible state (keys,
values, TTL presence) must equal the model's.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import keyshelf

from .conftest import BACKENDS, FakeClock, Opener

KEYS = st.sampled_from(["a", "b", "c", "user:1", "user:2", "user:10", "x.y"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
TTLS = st.one_of(st.none(), st.sampled_from([0.5, 1, 2.5]))
PATTERNS = st.sampled_from(["*", "user:*", "user:?", "[ab]", "x*", "nothing"])


def glob(pattern: str, key: str) -> bool:
    from keyshelf.patterns import compile_pattern

    return compile_pattern(pattern).match(key)


class StoreMachine(RuleBasedStateMachine):
    backend_name = "memory"
    api = "sync"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = FakeClock()
        self.stack = contextlib.ExitStack()
        factory = BACKENDS[self.backend_name][0]
        url, options = self.stack.enter_context(factory(Path(self.tmp.name)))
        self.opener = Opener(url, options, self.api, self.clock, shared=True)
        self.kv = self.opener()
        self.model: dict[str, tuple[Any, int | None]] = {}

    def teardown(self) -> None:
        self.opener.close()
        self.stack.close()
        self.tmp.cleanup()

    def now_ms(self) -> int:
        return math.floor(self.clock() * 1000)

    def expiry(self, ttl: float | None) -> int | None:
        # The contract's rounding: instants in ms, the TTL in whole ms rounded
        # down and added to the clock reading rounded down.
        return None if ttl is None else self.now_ms() + math.floor(ttl * 1000)

    def live(self) -> dict[str, tuple[Any, int | None]]:
        now = self.now_ms()
        return {k: v for k, v in self.model.items() if v[1] is None or v[1] > now}

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def set(self, key: str, value: Any, ttl: float | None) -> None:
        assert self.kv.set(key, value, ttl=ttl) is True
        self.model[key] = (value, self.expiry(ttl))

    @rule(key=KEYS, value=VALUES)
    def setnx(self, key: str, value: Any) -> None:
        absent = key not in self.live()
        assert self.kv.setnx(key, value) is absent
        if absent:
            self.model[key] = (value, None)

    @rule(keys=st.lists(KEYS, max_size=3))
    def delete(self, keys: list[str]) -> None:
        live = self.live()
        expected = len({k for k in keys if k in live})
        assert self.kv.delete(*keys) == expected
        for key in keys:
            self.model.pop(key, None)

    @rule(key=KEYS, delta=st.integers(min_value=-5, max_value=5))
    def increment(self, key: str, delta: int) -> None:
        live = self.live()
        current = live.get(key)
        if current is None:
            assert self.kv.increment(key, delta) == delta
            self.model[key] = (delta, None)
            return
        value, expires = current
        if type(value) not in (int, float):
            with pytest.raises(keyshelf.NotNumericError):
                self.kv.increment(key, delta)
            return
        result = value + delta
        if type(result) is int and not -(2**63) <= result < 2**63:
            with pytest.raises(OverflowError):
                self.kv.increment(key, delta)
            return
        got = self.kv.increment(key, delta)
        assert got == result and type(got) is type(result)
        self.model[key] = (result, expires)

    @rule(key=KEYS, ttl=st.sampled_from([0.5, 3]))
    def expire(self, key: str, ttl: float) -> None:
        live = self.live()
        assert self.kv.expire(key, ttl) is (key in live)
        if key in live:
            self.model[key] = (live[key][0], self.expiry(ttl))

    @rule(key=KEYS)
    def persist(self, key: str) -> None:
        live = self.live()
        had_ttl = key in live and live[key][1] is not None
        assert self.kv.persist(key) is had_ttl
        if had_ttl:
            self.model[key] = (live[key][0], None)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1, 3]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(mapping=st.dictionaries(KEYS, VALUES, max_size=4), ttl=TTLS)
    def mset(self, mapping: dict[str, Any], ttl: float | None) -> None:
        assert self.kv.mset(mapping, ttl=ttl) is True
        for key, value in mapping.items():
            self.model[key] = (value, self.expiry(ttl))

    @rule(pattern=PATTERNS)
    def delete_pattern(self, pattern: str) -> None:
        live = self.live()
        doomed = [k for k in self.model if glob(pattern, k)]
        assert self.kv.delete_pattern(pattern) == sum(1 for k in doomed if k in live)
        # Matching records go, expired or not (no purge count is owed for them).
        for key in doomed:
            del self.model[key]

    @rule()
    def purge(self) -> None:
        now = self.now_ms()
        expired = [k for k, (_, e) in self.model.items() if e is not None and e <= now]
        assert self.kv.delete_expired() == len(expired)
        for key in expired:
            del self.model[key]

    @invariant()
    def visible_state_matches(self) -> None:
        live = self.live()
        assert self.kv.keys() == sorted(live)
        dump = self.kv.dump()
        assert list(dump) == sorted(live)
        for key, (value, expires) in live.items():
            got = dump[key]
            assert type(got) is type(value)
            assert got == value or (isinstance(value, float) and math.isnan(value))
            ttl = self.kv.ttl(key)
            if expires is None:
                assert ttl is None
            else:
                assert ttl == (expires - self.now_ms()) / 1000


# Every step's invariant reads the whole store: on S3 that is ~20 HTTP requests a
# step (~1 s an example on moto), so the default run gives S3 a sixth of the
# examples; the stress run (make stress) runs S3 with the full count.
EXAMPLES = 60
S3_DEFAULT_EXAMPLES = 10


def _machine(backend_name: str, api: str, examples: int, suffix: str = "") -> Any:
    machine = type(
        f"StoreMachine_{backend_name}_{api}{suffix}",
        (StoreMachine,),
        {"backend_name": backend_name, "api": api},
    )
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    return machine.TestCase


# Backends whose expiry follows the server's clock cannot take the fake clock.
for _name, (_factory, _server_clock, _purges) in BACKENDS.items():
    if not _server_clock:
        for _api in ("sync", "async"):
            if _name == "s3":
                globals()[f"TestStateMachine_{_name}_{_api}"] = _machine(
                    _name, _api, S3_DEFAULT_EXAMPLES
                )
                globals()[f"TestStateMachine_{_name}_{_api}_full"] = pytest.mark.stress(
                    _machine(_name, _api, EXAMPLES, "_full")
                )
            else:
                globals()[f"TestStateMachine_{_name}_{_api}"] = _machine(_name, _api, EXAMPLES)
