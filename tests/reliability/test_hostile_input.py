"""Hostile input through every public method, on every backend, through both APIs.

Hypothesis draws a method and arguments from strategies that mix valid values
with hostile ones: keys with control characters, lone surrogates, 256+
characters, ``__`` prefixes, path pieces and SQL/glob metacharacters, and
non-``str`` keys (including unhashable ones, a ``str`` subclass, an int too
big to print, an object whose ``repr`` raises); unsupported, self-containing,
deeply nested and oversized values; TTLs that are zero, negative, ``nan``,
``inf``, bools, strings, huge; deltas of every type; non-``str`` and
pathological patterns; bad metadata, batches, batch sizes and streams.

A reference model written from the contract, docs/semantics.md (independent of keyshelf's code,
except that it uses keyshelf's glob matcher — itself checked against a real
Redis server's answers — to decide which keys a pattern matches, and the
codec's documented size rule for containers) predicts each call: either the
result and the new state, or the set of ``KVError`` subclasses that the
argument problems allow. Each call must then do exactly that:

* an accepted call returns what the model says and leaves the store as the
  model says (values with their exact types, metadata, which keys have a TTL);
* a rejected call raises one of the allowed ``KVError`` subclasses — never a
  bare ``TypeError``, ``AttributeError``, ``RecursionError`` or driver error —
  and leaves the store unchanged (values, stats, entries with their versions
  and timestamps);
* neighbouring namespaces with look-alike names (``t``, ``t:1:x``, ``t%``,
  ``t_1``, ``{t:1}``) are never touched.

The default run draws 80 calls per backend and API; ``make stress`` 1,500.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import io
import math
import os
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import keyshelf
from keyshelf.codec import Codec, payload_size
from keyshelf.patterns import _Nfa, _tokens, compile_pattern

from ..conftest import Opener
from .helpers import same

MAXV = 20_000  # max_value_size of the stores under test
NS = "t:1"
NEIGHBOURS = ("t", "t:1:x", "t%", "t_1", "{t:1}")
MAX_TTL = 9_000_000_000_000


# -- hostile objects --------------------------------------------------------------------------


class StrSubclass(str):
    pass


class IntSubclass(int):
    pass


class Color(enum.IntEnum):
    RED = 1


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class OddZone(dt.tzinfo):
    def utcoffset(self, when: Any) -> dt.timedelta:
        return dt.timedelta(hours=1)

    def dst(self, when: Any) -> dt.timedelta:
        return dt.timedelta(0)


HUGE = 10**5000  # repr() raises: more digits than Python prints
# Strategies drawing it: never inside sampled_from, whose repr would print it.
HUGE_S = st.builds(lambda: HUGE)


def _cycle_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def _cycle_dict() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def _released_view() -> memoryview:
    view = memoryview(b"gone")
    view.release()
    return view


def _deep_list(depth: int) -> list[Any]:
    value: list[Any] = ["leaf"]
    for _ in range(depth):
        value = [value]
    return value


def _deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


# -- strategies -------------------------------------------------------------------------------

SEED: dict[str, tuple[Any, int | None, dict[str, Any]]] = {
    "existing": ({"v": 1}, 1000, {"m": 1}),
    "counter": (5, None, {}),
    "float": (1.5, None, {}),
    "text": ("abc", None, {}),
    "blob": (b"\x00\x01", None, {"content_type": "application/x-raw"}),
    "none": (None, None, {}),
    "big": (2**70, None, {}),
    "b:c": ("looks like namespace t:1:b", None, {}),
    "%": ("percent", 2000, {}),
    "_": ("underscore", None, {}),
    "../x": ("dots", None, {}),
}
NEIGHBOUR_DATA = {"existing": "neighbour", "c": "c", "b:c": "x", "%": "p", "1:x": "y"}

PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
SPECIAL_KEYS = [
    "../x",
    "..\\x",
    "/etc/passwd",
    "x/../../y",
    "C:\\Windows",
    "'",
    '"',
    ";",
    "--",
    "'; DROP TABLE keyshelf; --",
    "%",
    "_",
    "a%b",
    "a_b",
    "*",
    "?",
    "[",
    "]",
    "\\",
    "{",
    "}",
    "#",
    ":",
    "t:1",
    "{t:1}",
    "keyshelf:{t:1}:x",
    "a b",
    "🚀",
    "👨\u200d👩\u200d👧",
    "k" * 255,
    "_single",
    "a__b",
    "\u00a0",
    "ﬁ",
]
VALID_KEYS = st.one_of(
    st.sampled_from(list(SEED)),
    st.sampled_from(SPECIAL_KEYS),
    st.text(PRINTABLE, min_size=1, max_size=12).filter(lambda k: not k.startswith("__")),
)
INVALID_STR_KEYS = st.one_of(
    st.sampled_from(
        [
            "",
            "__",
            "__x",
            "k" * 256,
            "a\nb",
            "\t",
            "a\0b",
            "\r",
            "a\x07",
            "\x7f",
            "\x1b[0m",
            "a\u2028",
            "\u2029",
            "a\ud800",
            "\udfff",
            "\x85",
        ]
    ),
    st.text(PRINTABLE, min_size=256, max_size=300),
    st.text(PRINTABLE, max_size=8).map(lambda s: "__" + s),
    st.tuples(st.text(PRINTABLE, max_size=5), st.sampled_from("\n\t\0\x01\x1f\ud83d")).map(
        lambda p: p[0] + p[1]
    ),
)
NON_STR = (
    st.sampled_from(
        [
            None,
            0,
            1,
            -7,
            2**64,
            1.5,
            math.nan,
            True,
            False,
            b"k",
            bytearray(b"k"),
            ["k"],
            ("k",),
            {"k": 1},
            {"k"},
            frozenset({"k"}),
            StrSubclass("existing"),
            1j,
            Ellipsis,
            len,
        ]
    )
    | st.builds(object)
    | st.builds(Unprintable)
    | HUGE_S
)
KEYS = st.one_of(VALID_KEYS, VALID_KEYS, INVALID_STR_KEYS, NON_STR)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


HASHABLE_KEYS = KEYS.filter(_hashable)

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
ZONES = st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))])
HASHABLE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), TEXT, st.binary(max_size=8), st.uuids()
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    TEXT,
    st.binary(max_size=12),
    st.datetimes(timezones=ZONES),
    st.dates(),
    st.times(timezones=ZONES),
    st.decimals(places=None),
    st.uuids(),
)
SMALL_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(TEXT, inner, max_size=3),
        st.dictionaries(HASHABLE_SCALARS, inner, max_size=2),
        st.sets(HASHABLE_SCALARS, max_size=3),
        st.frozensets(HASHABLE_SCALARS, max_size=3),
    ),
    max_leaves=6,
)
BIG_VALUES = st.one_of(
    st.builds(lambda n, c: c * n, st.integers(MAXV // 2 - 8, MAXV // 2 + 8), st.sampled_from("éü")),
    st.builds(lambda n: "x" * n, st.integers(MAXV - 8, MAXV + 8)),
    st.builds(lambda n: b"\0" * n, st.integers(MAXV - 8, MAXV + 8)),
    st.builds(bytearray, st.integers(MAXV - 2, MAXV + 2)),
    st.builds(lambda n: memoryview(b"m" * n), st.integers(MAXV - 2, MAXV + 2)),
    st.integers(150, 900).map(_deep_list),
    st.integers(150, 600).map(_deep_dict),
)
BAD_VALUES = st.one_of(
    st.sampled_from(
        [
            1j,
            range(3),
            Exception("e"),
            int,
            print,
            Color.RED,
            IntSubclass(3),
            StrSubclass("s"),
            "lone \ud800",
            Ellipsis,
            NotImplemented,
        ]
    ),
    st.builds(object),
    st.builds(lambda: collections.OrderedDict(a=1)),
    st.builds(lambda: collections.defaultdict(list)),
    st.builds(lambda: collections.deque([1])),
    st.builds(lambda: [1, {"a": object()}]),
    st.builds(lambda: {1j: "complex key"}),
    st.builds(lambda: {"nested": {frozenset({1j})}}),
    st.builds(lambda: dt.datetime(2020, 1, 1, tzinfo=OddZone())),
    st.builds(_cycle_list),
    st.builds(_cycle_dict),
    st.builds(_released_view),
    st.builds(lambda: [_released_view()]),
)
VALUES = st.one_of(
    SMALL_VALUES,
    SMALL_VALUES,
    st.builds(bytearray, st.binary(max_size=8)),
    st.builds(memoryview, st.binary(max_size=8)),
    BIG_VALUES,
    BAD_VALUES,
)
VALID_TTLS = st.one_of(
    st.integers(100, 10**6),
    st.floats(100, 1e6),
    st.builds(dt.timedelta, seconds=st.integers(100, 10**6)),
)
BAD_TTLS = (
    st.sampled_from(
        [
            0,
            -1,
            -0.0,
            0.0,
            math.nan,
            math.inf,
            -math.inf,
            True,
            False,
            "10",
            b"1",
            [10],
            {},
            Decimal(10),
            1j,
            10**13,
            1e13,
            10**400,
            -(10**400),
            dt.timedelta(0),
            dt.timedelta(seconds=-5),
            dt.timedelta.max,
            IntSubclass(100),
        ]
    )
    | st.builds(Unprintable)
    | HUGE_S
)
TTLS = st.one_of(st.none(), VALID_TTLS, BAD_TTLS)
DELTAS = st.one_of(
    st.integers(-1000, 1000),
    st.integers(-(2**66), 2**66),
    st.floats(),
    st.sampled_from(
        [
            10**400,
            -(10**400),
            2**63,
            -(2**63) - 1,
            True,
            False,
            None,
            "1",
            b"1",
            Decimal(1),
            1j,
            [1],
            IntSubclass(1),
        ]
    ),
    HUGE_S,
)
PATTERN_CHARS = st.sampled_from([*"*?[]^-\\{},%_'\":/.ab#", "é", "🚀", "t:1", "..", "**"])
PATTERNS = st.one_of(
    st.sampled_from(
        [
            "*",
            "?",
            "[",
            "]",
            "[]",
            "[^]",
            "[!a]",
            "\\",
            "a\\",
            "[a-]",
            "[z-a]",
            "**",
            "{a,b}",
            "%",
            "_",
            "%%",
            "'",
            "' OR 1=1 --",
            "*a*a*a*a*a*a*a*a*a*a*a*a*b",
            "[[[[[[[[[[",
            "\\*",
            "b:*",
            "t:1:*",
            "../*",
            "*x",
            "e*",
            "*" * 500,
            "*a" * 3000,
            "[" * 3000,
        ]
    ),
    st.lists(PATTERN_CHARS, max_size=10).map("".join),
    st.text(max_size=10),
    st.sampled_from([None, 1, b"*", ["*"]]),
    HUGE_S,
)
META_VALUES = st.one_of(SMALL_VALUES, BAD_VALUES)
METADATA = st.one_of(
    st.dictionaries(TEXT, SMALL_VALUES, max_size=3),
    st.builds(lambda m, t: {**m, "ttl": t}, st.dictionaries(TEXT, SMALL_VALUES, max_size=2), TTLS),
    st.dictionaries(TEXT, META_VALUES, min_size=1, max_size=2),
    st.sampled_from([[("a", 1)], "meta", 5, b"x"]),
    st.builds(lambda: {1: "int key"}),
    st.builds(lambda: {HUGE: 1}),
    st.builds(lambda: collections.OrderedDict(a=1)),
    st.builds(lambda: {"self": _cycle_list()}),
)
BATCHES = st.one_of(
    st.lists(KEYS, max_size=4),
    st.tuples(KEYS, KEYS),
    st.sets(VALID_KEYS, max_size=3),
    st.dictionaries(VALID_KEYS, st.integers(), max_size=3),
    st.sampled_from(["existing", b"ab", None, 5, 1.5]),
    HUGE_S,
    st.builds(object),
)
MAPPINGS = st.one_of(
    st.dictionaries(HASHABLE_KEYS, VALUES, max_size=4),
    st.dictionaries(VALID_KEYS, SMALL_VALUES, max_size=4),
    st.sampled_from([[("a", 1)], None, "abc", 5, ["a"]]),
)
BATCH_SIZES = st.one_of(
    st.integers(1, 4),
    st.sampled_from([2**31 - 1, 0, -1, True, 2.0, "3", None, 2**31]),
    HUGE_S,
)
NAMESPACES = st.one_of(st.sampled_from([NS, *NEIGHBOURS, "other"]), KEYS)
FLAGS = st.one_of(st.booleans(), st.sampled_from([0, 1, "", "yes", None, [], [0]]))


# -- the reference model ----------------------------------------------------------------------

E = keyshelf


def key_ok(key: object) -> bool:
    if type(key) is not str or not 0 < len(key) <= 255 or key.startswith("__"):
        return False
    return not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in key)


def batch_problem(keys: object) -> bool:
    if isinstance(keys, str | bytes):
        return True
    try:
        items = list(keys)  # type: ignore[call-overload]
    except TypeError:
        return True
    return not all(key_ok(k) for k in items)


def ttl_problem(ttl: object) -> bool:
    """True if ``ttl`` (not None) is not a usable TTL."""
    if type(ttl) is int or type(ttl) is float:
        return not (0 < ttl <= MAX_TTL)  # type: ignore[operator]
    if isinstance(ttl, dt.timedelta):
        return not 0 < ttl.total_seconds() <= MAX_TTL
    return True


_SCALAR_TYPES = (
    type(None),
    bool,
    int,
    float,
    bytes,
    bytearray,
    memoryview,
    dt.date,
    dt.datetime,
    Decimal,
    uuid.UUID,
)


def value_errors(value: object, limit: bool = True) -> set[type[Exception]]:
    """The errors encoding ``value`` may raise (empty: it is fine)."""
    stack: list[tuple[object, bool]] = [(value, False)]
    on_path: set[int] = set()
    while stack:
        item, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            continue
        t = type(item)
        if t is str:
            if any(unicodedata.category(c) == "Cs" for c in item):  # type: ignore[union-attr]
                return {E.SerializationError}
        elif t is memoryview:
            try:
                item.tobytes()  # type: ignore[union-attr]
            except ValueError:
                return {E.SerializationError}
        elif t is dt.datetime or t is dt.time:
            zone = item.tzinfo  # type: ignore[union-attr]
            if zone is not None and type(zone) is not dt.timezone:
                return {E.SerializationError}
        elif t in (list, tuple, dict, set, frozenset):
            if id(item) in on_path:
                return {E.SerializationError}
            on_path.add(id(item))
            stack.append((item, True))
            children: Iterable[Any] = (
                [*item.keys(), *item.values()] if t is dict else item  # type: ignore[union-attr, assignment]
            )
            stack.extend((child, False) for child in children)
        elif t not in _SCALAR_TYPES:
            return {E.SerializationError}
    if limit and size_of(value) > MAXV:
        return {E.ValueTooLargeError}
    return set()


def normal(value: Any) -> Any:
    """What the store gives back: bytearray and memoryview become bytes, at any depth."""
    t = type(value)
    if t is bytearray or t is memoryview:
        return bytes(value)
    if t is list:
        if any(type(v) in (bytearray, memoryview, list, tuple, dict) for v in value):
            return [normal(v) for v in value]
        return value
    if t is tuple:
        return tuple(normal(v) for v in value)
    if t is dict:
        return {normal(k): normal(v) for k, v in value.items()}
    return value


def size_of(value: Any) -> int:
    t = type(value)
    if t is str:
        return len(value.encode("utf-8", "surrogatepass"))
    if t in (bytes, bytearray, memoryview):
        return len(bytes(value))
    if t in (list, dict) and value and _depth(value) > 100:
        return 0  # the deep strategies stay far below the limit (checked below)
    # Containers and other scalars: the codec's documented size rule.
    return payload_size(*Codec().encode(value))


def _depth(value: Any) -> int:
    depth = 0
    while type(value) in (list, dict) and value:
        value = value[0] if type(value) is list else next(iter(value.values()))
        depth += 1
    return depth


def meta_errors(metadata: object, for_set: bool) -> set[type[Exception]]:
    if metadata is None and for_set:
        return set()
    if not isinstance(metadata, dict):
        return {E.InvalidArgumentError}
    if any(type(k) is not str for k in metadata):
        return {E.InvalidArgumentError}
    errors: set[type[Exception]] = set()
    user = {k: v for k, v in metadata.items() if k != "ttl"}
    if metadata.get("ttl") is not None and ttl_problem(metadata["ttl"]):
        errors.add(E.InvalidTTLError)
    if value_errors(user, limit=False):
        errors.add(E.SerializationError)
    return errors


def numeric(value: Any) -> bool:
    return type(value) is int or type(value) is float


@dataclass
class Rec:
    value: Any
    ttl: float | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    errors: set[type[Exception]] = field(default_factory=set)
    result: Any = None
    check: Callable[[Any], None] | None = None  # checks the result instead of equality
    changes: bool = False


def seconds(ttl: Any) -> float | None:
    if ttl is None:
        return None
    return ttl.total_seconds() if isinstance(ttl, dt.timedelta) else float(ttl)


def matches(pattern: str, key: str) -> bool:
    return compile_pattern(pattern).match(key)


class Model:
    """The contract, as a dict: one namespace of the store plus its neighbours."""

    def __init__(self) -> None:
        self.data: dict[str, Rec] = {k: Rec(normal(v), t, dict(m)) for k, (v, t, m) in SEED.items()}
        self.neighbours = {name: dict(NEIGHBOUR_DATA) for name in NEIGHBOURS}

    def sorted_keys(self) -> list[str]:
        return sorted(self.data)

    # Each method returns an Outcome; argument problems first, as sets of allowed errors.

    def get(self, key: Any, default: Any = None) -> Outcome:
        if not key_ok(key):
            return Outcome({E.InvalidKeyError})
        return Outcome(result=self.data[key].value if key in self.data else default)

    def set(
        self,
        key: Any,
        value: Any,
        ttl: Any = None,
        *,
        metadata: Any = None,
        nx: Any = False,
        xx: Any = False,
        keep_ttl: Any = False,
    ) -> Outcome:
        errors: set[type[Exception]] = set()
        if not key_ok(key):
            errors.add(E.InvalidKeyError)
        errors |= value_errors(value)
        if ttl is not None and ttl_problem(ttl):
            errors.add(E.InvalidTTLError)
        errors |= meta_errors(metadata, for_set=True)
        if nx and xx:
            errors.add(E.InvalidArgumentError)
        effective = ttl
        if effective is None and isinstance(metadata, dict):
            effective = metadata.get("ttl")
        if keep_ttl and effective is not None:
            errors.add(E.InvalidArgumentError)
        if errors:
            return Outcome(errors)
        present = key in self.data
        if (nx and present) or (xx and not present):
            return Outcome(result=False)
        old = self.data.get(key)
        new_ttl = old.ttl if keep_ttl and old is not None else seconds(effective)
        if metadata is None:
            meta = old.meta if old is not None else {}
        else:
            meta = {k: normal(v) for k, v in metadata.items() if k != "ttl"}
        self.data[key] = Rec(normal(value), new_ttl, meta)
        return Outcome(result=True, changes=True)

    def setnx(self, key: Any, value: Any, ttl: Any = None) -> Outcome:
        return self.set(key, value, ttl, nx=True)

    def delete(self, *keys: Any) -> Outcome:
        if batch_problem(keys):
            return Outcome({E.InvalidKeyError})
        gone = {k for k in keys if k in self.data}
        for k in gone:
            del self.data[k]
        return Outcome(result=len(gone), changes=bool(gone))

    def exists(self, key: Any) -> Outcome:
        if not key_ok(key):
            return Outcome({E.InvalidKeyError})
        return Outcome(result=key in self.data)

    def mset(self, mapping: Any, ttl: Any = None) -> Outcome:
        errors: set[type[Exception]] = set()
        if not isinstance(mapping, Mapping):
            errors.add(E.InvalidArgumentError)
        else:
            if not all(key_ok(k) for k in mapping):
                errors.add(E.InvalidKeyError)
            for value in mapping.values():
                errors |= value_errors(value)
        if ttl is not None and ttl_problem(ttl):
            errors.add(E.InvalidTTLError)
        if errors:
            return Outcome(errors)
        for key, value in mapping.items():
            old = self.data.get(key)
            self.data[key] = Rec(normal(value), seconds(ttl), old.meta if old else {})
        return Outcome(result=True, changes=bool(mapping))

    def set_many(self, mapping: Any, ttl: Any = None) -> Outcome:
        outcome = self.mset(mapping, ttl)
        if not outcome.errors:
            outcome.result = dict.fromkeys(mapping, True)
        return outcome

    def mget(self, keys: Any) -> Outcome:
        if batch_problem(keys):
            return Outcome({E.InvalidKeyError})
        wanted = list(keys)
        if any(k not in self.data for k in wanted):
            return Outcome({E.KeysNotFoundError})
        return Outcome(result={k: self.data[k].value for k in wanted})

    def get_many(self, keys: Any) -> Outcome:
        if batch_problem(keys):
            return Outcome({E.InvalidKeyError})
        return Outcome(result={k: self.data[k].value for k in list(keys) if k in self.data})

    def delete_many(self, keys: Any) -> Outcome:
        if batch_problem(keys):
            return Outcome({E.InvalidKeyError})
        wanted = list(keys)
        result = {k: k in self.data for k in wanted}
        for k in wanted:
            self.data.pop(k, None)
        return Outcome(result=result, changes=any(result.values()))

    def increment(self, key: Any, delta: Any = 1, sign: int = 1) -> Outcome:
        errors: set[type[Exception]] = set()
        if not key_ok(key):
            errors.add(E.InvalidKeyError)
        if type(delta) is not int and type(delta) is not float:
            errors.add(E.InvalidArgumentError)
        if errors:
            return Outcome(errors)
        delta = -delta if sign < 0 else delta
        old = self.data.get(key)
        if old is not None and not numeric(old.value):
            return Outcome({E.NotNumericError})
        try:
            result = delta if old is None else old.value + delta
        except OverflowError:
            return Outcome({E.IncrementOverflowError})
        if type(result) is int and not -(2**63) <= result < 2**63:
            return Outcome({E.IncrementOverflowError})
        self.data[key] = Rec(result, old.ttl if old else None, old.meta if old else {})
        return Outcome(result=result, changes=True)

    def decrement(self, key: Any, delta: Any = 1) -> Outcome:
        return self.increment(key, delta, sign=-1)

    def _pattern(self, pattern: Any) -> set[type[Exception]]:
        return set() if isinstance(pattern, str) else {E.InvalidPatternError}

    def _matching(self, pattern: Any) -> Outcome:
        if errors := self._pattern(pattern):
            return Outcome(errors)
        return Outcome(result=[k for k in self.sorted_keys() if matches(pattern, k)])

    def keys(self, pattern: Any = None) -> Outcome:
        # Listings only: no pattern is every live key, whatever the dialect.
        if pattern is None:
            return Outcome(result=list(self.sorted_keys()))
        return self._matching(pattern)

    def key_count(self, pattern: Any = None) -> Outcome:
        outcome = self.keys(pattern)
        if not outcome.errors:
            outcome.result = len(outcome.result)
        return outcome

    def get_pattern(self, pattern: Any) -> Outcome:
        outcome = self._matching(pattern)
        if not outcome.errors:
            outcome.result = {k: self.data[k].value for k in outcome.result}
        return outcome

    def delete_pattern(self, pattern: Any) -> Outcome:
        outcome = self._matching(pattern)
        if not outcome.errors:
            for k in outcome.result:
                del self.data[k]
            outcome.changes = bool(outcome.result)
            outcome.result = len(outcome.result)
        return outcome

    def ttl(self, key: Any) -> Outcome:
        if not key_ok(key):
            return Outcome({E.InvalidKeyError})
        rec = self.data.get(key)
        if rec is None:
            return Outcome(result=-1)
        if rec.ttl is None:
            return Outcome(result=None)
        given_ttl = rec.ttl

        def check(got: Any) -> None:
            assert type(got) is float and given_ttl - 300 < got <= given_ttl + 0.002, got

        return Outcome(check=check)

    def expire(self, key: Any, ttl: Any) -> Outcome:
        errors: set[type[Exception]] = set()
        if not key_ok(key):
            errors.add(E.InvalidKeyError)
        if ttl is None:
            errors.add(E.InvalidArgumentError)
        elif ttl_problem(ttl):
            errors.add(E.InvalidTTLError)
        if errors:
            return Outcome(errors)
        if key not in self.data:
            return Outcome(result=False)
        self.data[key].ttl = seconds(ttl)
        return Outcome(result=True, changes=True)

    def persist(self, key: Any) -> Outcome:
        if not key_ok(key):
            return Outcome({E.InvalidKeyError})
        rec = self.data.get(key)
        if rec is None or rec.ttl is None:
            return Outcome(result=False)
        rec.ttl = None
        return Outcome(result=True, changes=True)

    def storage_size(self, *keys: Any) -> Outcome:
        if not keys:
            return Outcome(result={"total": sum(size_of(r.value) for r in self.data.values())})
        if batch_problem(keys):
            return Outcome({E.InvalidKeyError})
        return Outcome(result={k: size_of(self.data[k].value) for k in keys if k in self.data})

    def delete_expired(self) -> Outcome:
        return Outcome(result=0)

    def cleanup_expired(self) -> Outcome:
        return Outcome(result=0)

    def compare_and_swap(self, key: Any, old_value: Any, new_value: Any) -> Outcome:
        errors: set[type[Exception]] = set()
        if not key_ok(key):
            errors.add(E.InvalidKeyError)
        errors |= value_errors(old_value, limit=False)
        errors |= value_errors(new_value)
        if errors:
            return Outcome(errors)
        rec = self.data.get(key)
        if rec is None or not same(rec.value, normal(old_value)):
            return Outcome(result=False)
        rec.value = normal(new_value)
        return Outcome(result=True, changes=True)

    def append(self, key: Any, value: Any) -> Outcome:
        errors: set[type[Exception]] = set()
        if not key_ok(key):
            errors.add(E.InvalidKeyError)
        if type(value) not in (str, bytes, bytearray, memoryview):
            errors.add(E.AppendTypeError)
        else:
            errors |= value_errors(value)
        if errors:
            return Outcome(errors)
        value = normal(value)
        rec = self.data.get(key)
        if rec is None:
            self.data[key] = Rec(value, None, {})
            return Outcome(result=value, changes=True)
        if type(rec.value) is not type(value):
            return Outcome({E.AppendTypeError})
        if size_of(rec.value + value) > MAXV:
            return Outcome({E.ValueTooLargeError})
        rec.value = rec.value + value
        return Outcome(result=rec.value, changes=True)

    def get_metadata(self, key: Any) -> Outcome:
        if not key_ok(key):
            return Outcome({E.InvalidKeyError})
        rec = self.data.get(key)
        return Outcome(result=None if rec is None else rec.meta)

    def set_metadata(self, key: Any, metadata: Any, *, replace: Any = False) -> Outcome:
        errors: set[type[Exception]] = set()
        if not key_ok(key):
            errors.add(E.InvalidKeyError)
        errors |= meta_errors(metadata, for_set=False)
        if errors:
            return Outcome(errors)
        rec = self.data.get(key)
        if rec is None:
            return Outcome(result=False)
        user = {k: normal(v) for k, v in metadata.items() if k != "ttl"}
        rec.meta = user if replace else {**rec.meta, **user}
        if metadata.get("ttl") is not None:
            rec.ttl = seconds(metadata["ttl"])
        return Outcome(result=True, changes=True)

    def get_entry(self, key: Any) -> Outcome:
        if not key_ok(key):
            return Outcome({E.InvalidKeyError})
        rec = self.data.get(key)
        if rec is None:
            return Outcome(result=None)

        def check(entry: Any) -> None:
            assert entry.key == key and same(entry.value, rec.value)
            assert same(entry.metadata, rec.meta)
            assert (entry.expires_at is None) == (rec.ttl is None)
            assert entry.version >= 1

        return Outcome(check=check)

    def values(self) -> Outcome:
        return Outcome(result=[self.data[k].value for k in self.sorted_keys()])

    def size(self) -> Outcome:
        return Outcome(result=len(self.data))

    def is_empty(self) -> Outcome:
        return Outcome(result=not self.data)

    def dump(self) -> Outcome:
        return Outcome(result={k: self.data[k].value for k in self.sorted_keys()})

    def stats(self) -> Outcome:
        with_ttl = sum(1 for r in self.data.values() if r.ttl is not None)
        n = len(self.data)

        def check(got: Any) -> None:
            wanted = {
                "total_keys": n,
                "active_keys": n,
                "expired_keys": 0,
                "keys_with_ttl": with_ttl,
            }
            assert {k: got[k] for k in wanted} == wanted, got

        return Outcome(check=check)

    def clear(self) -> Outcome:
        n = len(self.data)
        self.data.clear()
        return Outcome(result=n, changes=bool(n))

    def clear_namespace(self, name: Any) -> Outcome:
        if not key_ok(name):
            return Outcome({E.InvalidKeyError})
        if name == NS:
            return self.clear()
        if name in self.neighbours:
            n = len(self.neighbours[name])
            self.neighbours[name] = {}
            return Outcome(result=n, changes=bool(n))
        return Outcome(result=0)

    def list_namespaces(self) -> Outcome:
        names = [n for n, d in self.neighbours.items() if d]
        if self.data:
            names.append(NS)
        return Outcome(result=sorted(names))

    def namespace(self, name: Any) -> Outcome:
        if not key_ok(name):
            return Outcome({E.InvalidKeyError})
        if name == NS:
            expected = {k: self.data[k].value for k in self.sorted_keys()}
        else:
            expected = dict(sorted(self.neighbours.get(name, {}).items()))

        def check(view: Any) -> None:
            got = view.dump()
            assert list(got) == list(expected)
            assert all(same(got[k], expected[k]) for k in expected)

        return Outcome(check=check)

    def _batch_size(self, batch_size: Any) -> set[type[Exception]]:
        ok = type(batch_size) is int and 1 <= batch_size <= 2**31 - 1
        return set() if ok else {E.InvalidArgumentError}

    def iter_keys(self, pattern: Any = None, *, batch_size: Any = 1000) -> Outcome:
        errors = (set() if pattern is None else self._pattern(pattern)) | self._batch_size(
            batch_size
        )
        if errors:
            return Outcome(errors)
        return self.keys(pattern)

    def iter_items(self, pattern: Any = None, *, batch_size: Any = 1000) -> Outcome:
        outcome = self.iter_keys(pattern, batch_size=batch_size)
        if not outcome.errors:
            outcome.result = [(k, self.data[k].value) for k in outcome.result]
        return outcome

    def export_import(
        self, destination: Any, *, all_namespaces: bool = False, batch_size: Any = 1000
    ) -> Outcome:
        errors = self._batch_size(batch_size)
        if not isinstance(destination, io.BytesIO):
            errors.add(E.InvalidArgumentError)
        if errors:
            return Outcome(errors)
        n = len(self.data)
        if all_namespaces:
            n += sum(len(d) for d in self.neighbours.values())
        return Outcome(result=(n, n))

    def import_garbage(self, source: Any) -> Outcome:
        if isinstance(source, io.BytesIO | list):  # a stream, or an iterable of lines
            return Outcome({E.ExportFormatError})
        return Outcome({E.InvalidArgumentError})

    # The sync store's mapping protocol.

    def getitem(self, key: Any) -> Outcome:
        outcome = self.get(key)
        if not outcome.errors and key not in self.data:
            return Outcome({E.KeyNotFoundError})
        return outcome

    def setitem(self, key: Any, value: Any) -> Outcome:
        outcome = self.set(key, value)
        outcome.result = None
        return outcome

    def delitem(self, key: Any) -> Outcome:
        if not key_ok(key):
            return Outcome({E.InvalidKeyError})
        if key not in self.data:
            return Outcome({E.KeyNotFoundError})
        del self.data[key]
        return Outcome(result=None, changes=True)

    def contains(self, key: Any) -> Outcome:
        return self.exists(key)

    def len(self) -> Outcome:
        return self.size()

    def iter(self) -> Outcome:
        return Outcome(result=self.sorted_keys())


# -- calls: (name on the model, how to make it on the store, arguments) ------------------------


@dataclass
class Call:
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        def short(v: Any) -> str:
            try:
                text = repr(v)
            except Exception:
                text = f"<{type(v).__name__}>"
            return text if len(text) < 80 else text[:77] + "..."

        parts = [short(a) for a in self.args] + [f"{k}={short(v)}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"


def calls(api: str) -> st.SearchStrategy[Call]:
    def c(name: str, *args: Any, **kwargs: Any) -> st.SearchStrategy[Call]:
        return st.builds(
            lambda a, k: Call(name, tuple(a), dict(k)),
            st.tuples(*args),
            st.fixed_dictionaries(kwargs),
        )

    options = [
        c("get", KEYS, st.sampled_from([None, "default", 0])),
        c("set", KEYS, VALUES, TTLS),
        c("set", KEYS, SMALL_VALUES, TTLS, metadata=st.none() | METADATA, keep_ttl=FLAGS),
        c("set", KEYS, SMALL_VALUES, nx=FLAGS, xx=FLAGS),
        c("setnx", KEYS, VALUES, TTLS),
        st.builds(lambda keys: Call("delete", tuple(keys)), st.lists(KEYS, max_size=3)),
        c("exists", KEYS),
        c("mset", MAPPINGS, TTLS),
        c("set_many", MAPPINGS, TTLS),
        c("mget", BATCHES),
        c("get_many", BATCHES),
        c("delete_many", BATCHES),
        c("increment", KEYS, DELTAS),
        c("decrement", KEYS, DELTAS),
        c("keys", PATTERNS),
        c("key_count", PATTERNS),
        c("get_pattern", PATTERNS),
        c("delete_pattern", PATTERNS),
        c("ttl", KEYS),
        c("expire", KEYS, TTLS),
        c("persist", KEYS),
        st.builds(lambda keys: Call("storage_size", tuple(keys)), st.lists(KEYS, max_size=3)),
        c("delete_expired"),
        c("cleanup_expired"),
        c("compare_and_swap", KEYS, VALUES, VALUES),
        c(
            "compare_and_swap",
            st.sampled_from(list(SEED)),
            st.sampled_from(
                [v for v, _, _ in SEED.values()] + [5.0, True, {"v": 1.0}, b"\x00\x01"]
            ),
            VALUES,
        ),
        c("append", KEYS, st.one_of(TEXT, st.binary(max_size=8), VALUES)),
        c(
            "append",
            st.sampled_from(["text", "blob", "counter", "new"]),
            st.one_of(
                TEXT,
                st.binary(max_size=5),
                st.builds(bytearray, st.binary(max_size=5)),
                st.builds(lambda n: "é" * n, st.integers(MAXV // 2 - 3, MAXV // 2 + 3)),
            ),
        ),
        c("get_metadata", KEYS),
        c("set_metadata", KEYS, METADATA, replace=FLAGS),
        c("get_entry", KEYS),
        c("values"),
        c("size"),
        c("is_empty"),
        c("dump"),
        c("stats"),
        c("clear"),
        c("clear_namespace", NAMESPACES),
        c("list_namespaces"),
        c("namespace", NAMESPACES),
        c("iter_keys", PATTERNS, batch_size=BATCH_SIZES),
        c("iter_items", PATTERNS, batch_size=BATCH_SIZES),
        c(
            "export_import",
            st.one_of(st.builds(io.BytesIO), st.sampled_from([None, 5, b"x"])),
            all_namespaces=st.booleans(),
            batch_size=BATCH_SIZES,
        ),
        c(
            "import_garbage",
            st.one_of(
                st.builds(io.BytesIO, st.binary(max_size=40)),
                st.builds(lambda: io.BytesIO(b'{"format": "keyshelf.export"}\n{"key": 5}\n')),
                st.sampled_from([None, 5, [b"x"]]),
            ),
        ),
    ]
    if api == "sync":
        options += [
            c("getitem", KEYS),
            c("setitem", KEYS, VALUES),
            c("delitem", KEYS),
            c("contains", KEYS),
            c("len"),
            c("iter"),
        ]
    return st.one_of(*options)


def perform(kv: Any, call: Call) -> Any:
    """Make the call on the store (sync store, or the async one driven by AsyncDriver)."""
    name, args, kwargs = call.name, call.args, call.kwargs
    if name in ("iter_keys", "iter_items"):
        return list(getattr(kv, name)(*args, **kwargs))
    if name == "export_import":
        destination = args[0]
        exported = kv.export(destination, **kwargs)
        destination.seek(0)
        return exported, kv.import_(destination, batch_size=kwargs["batch_size"])
    if name == "import_garbage":
        return kv.import_(args[0])
    if name == "getitem":
        return kv[args[0]]
    if name == "setitem":
        kv[args[0]] = args[1]
        return None
    if name == "delitem":
        del kv[args[0]]
        return None
    if name == "contains":
        return args[0] in kv
    if name == "len":
        return len(kv)
    if name == "iter":
        return list(iter(kv))
    return getattr(kv, name)(*args, **kwargs)


# -- the test ----------------------------------------------------------------------------------


def seed(kv: Any) -> None:
    for name in (NS, *NEIGHBOURS):
        kv.clear_namespace(name)
    for key, (value, ttl, meta) in SEED.items():
        kv.set(key, value, ttl, metadata=meta or None)
    for name in NEIGHBOURS:
        kv.namespace(name).mset(NEIGHBOUR_DATA)


def observe(kv: Any) -> Any:
    """Everything a rejected call must leave as it was."""
    entries = []
    for key in kv.keys():
        entry = kv.get_entry(key)
        entries.append(
            (
                key,
                entry.metadata,
                entry.version,
                entry.created_at,
                entry.updated_at,
                entry.expires_at,
                entry.checksum,
            )
        )
    return kv.dump(), kv.stats(), entries, neighbours(kv)


def neighbours(kv: Any) -> dict[str, Any]:
    return {name: kv.namespace(name).dump() for name in NEIGHBOURS}


def assert_like_model(kv: Any, model: Model) -> None:
    dump = kv.dump()
    assert list(dump) == model.sorted_keys()
    for key, rec in model.data.items():
        assert same(dump[key], rec.value), (key, dump[key], rec.value)
        entry = kv.get_entry(key)
        assert same(entry.metadata, rec.meta), (key, entry.metadata, rec.meta)
        assert (entry.expires_at is None) == (rec.ttl is None), key
    got = neighbours(kv)
    for name, data in model.neighbours.items():
        assert got[name] == dict(sorted(data.items())), name


def check_call(kv: Any, model: Model, call: Call, tally: collections.Counter[str]) -> bool:
    """Make one call; True if the store changed (it then needs seeding again)."""
    before = observe(kv)
    expected: Outcome = getattr(model, call.name)(*call.args, **call.kwargs)
    try:
        result = perform(kv, call)
    except keyshelf.KVError as exc:
        assert expected.errors, f"{call} raised {exc!r} but the model accepts it"
        assert isinstance(exc, tuple(expected.errors)), (
            f"{call} raised {type(exc).__name__}: {exc}; the model allows "
            f"{sorted(e.__name__ for e in expected.errors)}"
        )
        assert same(observe(kv), before), f"the rejected {call} changed the store"
        event(f"{call.name}: refused ({type(exc).__name__})")
        tally["refused"] += 1
        tally[f"refused: {type(exc).__name__}"] += 1
        return False
    except BaseException as exc:
        raise AssertionError(f"{call} raised {type(exc).__name__}, not a KVError: {exc}") from exc
    assert not expected.errors, (
        f"{call} returned {result!r:.200} but the model expects "
        f"{sorted(e.__name__ for e in expected.errors)}"
    )
    if expected.check is not None:
        expected.check(result)
    else:
        assert same(result, expected.result), (
            f"{call}: got {result!r:.300}, model {expected.result!r:.300}"
        )
    assert_like_model(kv, model)
    event(f"{call.name}: accepted")
    tally["accepted"] += 1
    tally[f"accepted: {call.name}"] += 1
    return expected.changes or call.name in ("export_import", "namespace")


def run_hostile(opener: Opener, backend_name: str, api: str, examples: int) -> None:
    kv = opener(namespace=NS, max_value_size=MAXV)
    state = {"dirty": True}
    tally: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )
    @given(call=calls(api))
    def one_call(call: Call) -> None:
        if state["dirty"]:
            seed(kv)
            state["dirty"] = False
        model = Model()
        state["dirty"] = True  # until the call is known to have changed nothing
        state["dirty"] = check_call(kv, model, call, tally)

    one_call()
    methods = len([k for k in tally if k.startswith("accepted: ")])
    errors = {k.split(": ")[1]: v for k, v in tally.items() if k.startswith("refused: ")}
    print(
        f"\n{backend_name} ({api}): {tally['accepted']} calls accepted "
        f"({methods} methods), {tally['refused']} refused: {dict(sorted(errors.items()))}"
    )
    assert tally["accepted"] > 0 and tally["refused"] > 0


def test_hostile_calls_behave_as_the_model_says(
    opener: Opener, backend_name: str, api: str
) -> None:
    # S3 answers over HTTP (several requests per call): fewer examples keep its share of
    # the default suite small; the soak below runs the full count on every backend.
    run_hostile(opener, backend_name, api, examples=30 if backend_name == "s3" else 80)


@pytest.mark.stress
@pytest.mark.timeout(1800)
def test_hostile_calls_soak(opener: Opener, backend_name: str, api: str) -> None:
    run_hostile(opener, backend_name, api, examples=1500)


# -- URLs and options ----------------------------------------------------------------------------

# Path pieces stay inside the test's directory: no "/" and no "..", but every other
# hostile character (percent escapes, NUL, surrogates, query and fragment marks).
PATH_PIECE = (
    st.lists(
        st.sampled_from([*"ab%0?#&=;:@ \\'\"*[{é\x00", "%00", "%2F", "%ff", "\ud800", "🚀"]),
        min_size=1,
        max_size=12,
    )
    .map("".join)
    .filter(lambda p: "/" not in p and ".." not in p)
)
OPTION_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "yes",
            "true",
            "nan",
            "inf",
            "1e999",
            "WAL",
            "off",
            "gzip",
            "zstd",
            "x; DROP TABLE t",
            "{a}",
            "a b",
            "\x00",
            "\ud800",
            "keyshelf",
            "kv",
            "9" * 30,
        ]
    ),
    st.integers(-5, 5),
    st.floats(),
    st.booleans(),
    st.none(),
    st.sampled_from([[1], {"a": 1}, b"x", 1j]),
    st.builds(object),
    HUGE_S,
)
LOCAL_OPTIONS = [
    "namespace",
    "separator",
    "codec",
    "max_value_size",
    "auto_cleanup",
    "cleanup_interval",
    "cache",
    "cache_ttl",
    "cache_size",
    "timeout",
    "durable",
    "table",
    "journal_mode",
    "compression",
    "format",
    "path",
    "prefix",
    "schema",
    "bogus",
    "",
]
REDIS_OPTIONS = [
    "db",
    "socket_timeout",
    "socket_connect_timeout",
    "max_connections",
    "pool_timeout",
    "health_check_interval",
    "client_name",
    "cluster",
    "ssl_cert_reqs",
    "username",
    "password",
    "prefix",
    "namespace",
    "bogus",
]
POSTGRES_OPTIONS = [
    "table",
    "min_size",
    "max_size",
    "connect_timeout",
    "statement_timeout",
    "application_name",
    "sslmode",
    "namespace",
    "bogus",
]


def _exercise(store: Any) -> None:
    """A store that opened must work: a round trip, then leave nothing behind."""
    try:
        store.set("k", None)  # 0 bytes: fits any max_value_size
        assert store.exists("k") and store.get("k", "missing") is None
        store.clear()
    finally:
        store.close()


def _open_checked(url: Any, options: dict[str, Any]) -> str:
    try:
        store = keyshelf.open(url, **options)
    except keyshelf.KVError as exc:
        return type(exc).__name__
    except BaseException as exc:
        raise AssertionError(
            f"open({url!r:.100}, {sorted(options)}) raised {type(exc).__name__}: {exc}"
        ) from exc
    _exercise(store)
    return "opened"


URLS = st.one_of(
    st.builds(
        lambda scheme, netloc, path, query: f"{scheme}://{netloc}{path}{query}",
        st.sampled_from(
            ["memory", "sqlite", "file", "SQLITE", "mysql", "http", "s q", "x+y", "unix", "", "1x"]
        ),
        st.sampled_from(["", "", "localhost", "host:1", "[::1", "user:pw@", "%zz"]),
        st.one_of(st.just(""), PATH_PIECE.map(lambda p: "/" + p)),
        st.one_of(st.just(""), st.builds(lambda k, v: f"?{k}={v}", PATH_PIECE, PATH_PIECE)),
    ),
    PATH_PIECE,  # a bare path: an SQLite file in the current directory
    st.text(max_size=20).filter(lambda u: "/" not in u and ".." not in u),
    st.sampled_from([None, 5, b"memory://", ["memory://"], ""]),
    HUGE_S,
)
LOCAL = st.dictionaries(st.sampled_from(LOCAL_OPTIONS), OPTION_VALUES, max_size=3)
REDIS = st.dictionaries(st.sampled_from(REDIS_OPTIONS), OPTION_VALUES, max_size=3)
POSTGRES = st.dictionaries(st.sampled_from(POSTGRES_OPTIONS), OPTION_VALUES, max_size=3)
REDIS_PATHS = st.sampled_from(["/0", "/1", "/x", "/99", "", "/-1"])


def local_url(url: Any, options: dict[str, Any], directory: Any) -> None:
    """In a directory of its own (bare paths and sqlite:/// URLs are relative to it)."""
    previous = os.getcwd()
    saved = os.environ.pop("KEYSHELF_URL", None)
    os.chdir(directory)
    try:
        event(_open_checked(url, options))
    finally:
        os.chdir(previous)
        if saved is not None:
            os.environ["KEYSHELF_URL"] = saved


def redis_options(options: dict[str, Any], path: str) -> None:
    pytest.importorskip("redis")
    from ..backends import redis_url

    base = redis_url()
    if "cluster=true" in base or not base.startswith("redis://"):
        pytest.skip("needs a standalone redis:// test server")
    host = base.split("://", 1)[1].split("/", 1)[0]
    prefix = f"keyshelf-test-{uuid.uuid4().hex}"
    options = {"socket_timeout": 2, "socket_connect_timeout": 2, "prefix": prefix, **options}
    event(_open_checked(f"redis://{host}{path}", options))  # an opened store clears its keys


def postgres_options(options: dict[str, Any]) -> None:
    pytest.importorskip("psycopg")
    from ..backends import test_postgres_server as pg_server

    schema = pg_server.fresh_schema()
    try:
        event(
            _open_checked(
                pg_server.server_url(), {"connect_timeout": 3, **options, "schema": schema}
            )
        )
    finally:
        pg_server.drop_schema(schema)


def _quick(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@_quick(60)
@given(url=URLS, options=LOCAL)
def test_hostile_urls_and_options_open_cleanly_or_are_refused(
    url: Any, options: dict[str, Any], tmp_path: Any
) -> None:
    local_url(url, options, tmp_path)


@_quick(30)
@given(options=REDIS, path=REDIS_PATHS)
def test_hostile_redis_options_open_cleanly_or_are_refused(
    options: dict[str, Any], path: str
) -> None:
    redis_options(options, path)


@_quick(20)
@given(options=POSTGRES)
def test_hostile_postgres_options_open_cleanly_or_are_refused(options: dict[str, Any]) -> None:
    postgres_options(options)


@pytest.mark.stress
@_quick(1500)
@given(url=URLS, options=LOCAL)
def test_hostile_urls_soak(url: Any, options: dict[str, Any], tmp_path: Any) -> None:
    local_url(url, options, tmp_path)


@pytest.mark.stress
@_quick(400)
@given(options=REDIS, path=REDIS_PATHS)
def test_hostile_redis_options_soak(options: dict[str, Any], path: str) -> None:
    redis_options(options, path)


@pytest.mark.stress
@_quick(300)
@given(options=POSTGRES)
def test_hostile_postgres_options_soak(options: dict[str, Any]) -> None:
    postgres_options(options)


# --------------------------------------------------------------------------
# Hostile patterns in the separator dialect: brace groups whose regular
# expression used to backtrack exponentially (``{,}`` * 30 + ``b`` took 22 s
# against a one-character key, ``*{a,aa}`` * 4 + ``*b`` more than 30 s against
# 247 characters, holding the GIL), and long separators. The work is bounded
# deterministically by the automaton's visit count; the timeout is only a
# safety net.

HOSTILE_SEPARATOR_PATTERNS = [
    "{,}" * 30 + "b",
    "{,}" * 300 + "*",
    "*{a,aa}" * 4 + "*b",
    "*{a,aa}" * 40 + "*b",
    "{a,b}" * 40 + "*",
    "*a" * 40 + "*b",
    "{**.,a.}" * 30 + "b",
    "**.{a,*}" * 30 + ".**",
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("separator", [".", "::"])
def test_hostile_separator_patterns_do_bounded_work(opener: Opener, separator: str) -> None:
    kv = opener(separator=separator)
    keys = ["a", "b", "a" * 247, "a" * 254 + "b", separator.join(["a"] * 60), "x" + separator]
    kv.mset({key: index for index, key in enumerate(keys)})
    for pattern in HOSTILE_SEPARATOR_PATTERNS:
        automaton = _Nfa(_tokens(pattern, separator), separator)
        expected = []
        for key in keys:
            answer, steps = automaton.run(key)
            assert steps <= (2 * automaton.size + 1) * (len(key) + 1)
            if answer:
                expected.append(key)
        expected.sort()
        assert kv.keys(pattern) == expected, pattern
        assert kv.key_count(pattern) == len(expected), pattern
        assert sorted(kv.get_pattern(pattern)) == expected, pattern
