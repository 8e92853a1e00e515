"""The typed codec: exact round trips, tags, refusals, the documented format."""

from __future__ import annotations

import collections
import enum
import math
import subprocess
import sys
import textwrap
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from hashlib import blake2b
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyshelf._bigint import int_from_text, int_to_text
from keyshelf._deep_json import dump_deep
from keyshelf.codec import (
    FAST_DEPTH,
    TAG_BIGINT,
    TAG_BOOL,
    TAG_BYTES,
    TAG_EXT,
    TAG_FLOAT,
    TAG_INT,
    TAG_JSON,
    TAG_NONE,
    TAG_PICKLE,
    TAG_SPECIAL_FLOAT,
    TAG_STR,
    Codec,
    PickleCodec,
    checksum,
    get_codec,
    payload_size,
    values_equal,
)
from keyshelf.errors import InvalidURLError, SerializationError

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

CODEC = Codec()
NY = ZoneInfo("America/New_York")


def roundtrip(value: Any, codec: Codec = CODEC) -> Any:
    return codec.decode(*codec.encode(value))


# --------------------------------------------------------------------------
# exact, type-aware comparison (iterative: works for very deep values)
# --------------------------------------------------------------------------


def _same_scalar(a: Any, b: Any) -> bool:
    if type(a) is float:
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is Decimal:
        return str(a) == str(b)
    if type(a) in (datetime, time):
        return (
            a.isoformat() == b.isoformat()
            and a.fold == b.fold
            and type(a.tzinfo) is type(b.tzinfo)
            and (a.tzinfo is None or repr(a.tzinfo) == repr(b.tzinfo))
        )
    return bool(a == b)


def assert_same(a: Any, b: Any) -> None:
    """``b`` is ``a``: same types at every level, same content, same order."""
    stack = [(a, b, "")]
    while stack:
        x, y, path = stack.pop()
        assert type(x) is type(y), f"type differs at {path or 'top'}: {type(x)} vs {type(y)}"
        t = type(x)
        if t in (list, tuple):
            assert len(x) == len(y), path
            stack.extend((p, q, f"{path}[{i}]") for i, (p, q) in enumerate(zip(x, y, strict=True)))
        elif t is dict:
            assert len(x) == len(y), path
            for i, ((k1, v1), (k2, v2)) in enumerate(zip(x.items(), y.items(), strict=True)):
                stack.append((k1, k2, f"{path}<key {i}>"))
                stack.append((v1, v2, f"{path}[{k1!r}]"))
        elif t in (set, frozenset):
            assert len(x) == len(y), path
            if len(x) == 1:  # iterative, for deeply nested sets
                stack.append((next(iter(x)), next(iter(y)), f"{path}{{}}"))
                continue
            for element in x:
                assert any(_same_tree(element, other) for other in y), f"{element!r} at {path}"
        else:
            assert _same_scalar(x, y), f"{x!r} != {y!r} at {path or 'top'}"


def _same_tree(a: Any, b: Any) -> bool:
    try:
        assert_same(a, b)
    except AssertionError:
        return False
    return True


def nest(depth: int, make: Any, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = make(value)
    return value


# --------------------------------------------------------------------------
# tags and round trips, one case at a time
# --------------------------------------------------------------------------

UTC_PLUS_0530 = timezone(timedelta(hours=5, minutes=30))
NAMED_TZ = timezone(timedelta(hours=1), "CET")

TAG_CASES = [
    (None, TAG_NONE, None),
    (True, TAG_BOOL, 1),
    (False, TAG_BOOL, 0),
    (0, TAG_INT, 0),
    (-5, TAG_INT, -5),
    (2**63 - 1, TAG_INT, 2**63 - 1),
    (-(2**63), TAG_INT, -(2**63)),
    (2**63, TAG_BIGINT, "9223372036854775808"),
    (-(2**63) - 1, TAG_BIGINT, "-9223372036854775809"),
    (2**80, TAG_BIGINT, str(2**80)),
    (3.0, TAG_FLOAT, 3.0),
    (0.0, TAG_FLOAT, 0.0),
    (-1.5e-300, TAG_FLOAT, -1.5e-300),
    (-0.0, TAG_SPECIAL_FLOAT, "-0.0"),
    (math.nan, TAG_SPECIAL_FLOAT, "nan"),
    (math.inf, TAG_SPECIAL_FLOAT, "inf"),
    (-math.inf, TAG_SPECIAL_FLOAT, "-inf"),
    ("", TAG_STR, ""),
    ("héllo ✓ 🎉", TAG_STR, "héllo ✓ 🎉"),
    (b"\x00\xff raw", TAG_BYTES, b"\x00\xff raw"),
    ([], TAG_JSON, b"[]"),
    ({}, TAG_JSON, b"{}"),
    ([1, 2.0, True, None, "s"], TAG_JSON, b'[1,2.0,true,null,"s"]'),
    ({"a": {"b": [-0.0, 1e16]}}, TAG_JSON, b'{"a":{"b":[-0.0,1e+16]}}'),
    ({"$a": 1, "$b": 2}, TAG_JSON, b'{"$a":1,"$b":2}'),  # two keys: not tag-like
    ({"a$": 1}, TAG_JSON, b'{"a$":1}'),
    ((1, 2), TAG_EXT, b'{"$tuple":[1,2]}'),
    ((), TAG_EXT, b'{"$tuple":[]}'),
    ({3, 1, 2}, TAG_EXT, b'{"$set":[1,2,3]}'),
    (frozenset({"b", "a"}), TAG_EXT, b'{"$frozenset":["a","b"]}'),
    ({1: "a"}, TAG_EXT, b'{"$map":[[1,"a"]]}'),
    ({"$set": [1]}, TAG_EXT, b'{"$map":[["$set",[1]]]}'),
    ([b"ab"], TAG_EXT, b'[{"$bytes":"YWI="}]'),
    ([2**64], TAG_EXT, b'[{"$int":"18446744073709551616"}]'),
    ([math.inf, -math.inf], TAG_EXT, b'[{"$float":"inf"},{"$float":"-inf"}]'),
    (date(2024, 2, 29), TAG_EXT, b'{"$date":"2024-02-29"}'),
    (datetime(2024, 1, 2, 3, 4, 5, 6), TAG_EXT, b'{"$datetime":"2024-01-02T03:04:05.000006"}'),
    (
        datetime(2024, 1, 2, tzinfo=UTC),
        TAG_EXT,
        b'{"$datetime":"2024-01-02T00:00:00+00:00"}',
    ),
    (
        datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NY),
        TAG_EXT,
        b'{"$datetime":{"iso":"2024-11-03T01:30:00-05:00","zone":"America/New_York","fold":1}}',
    ),
    (
        datetime(2024, 1, 1, tzinfo=NAMED_TZ),
        TAG_EXT,
        b'{"$datetime":{"iso":"2024-01-01T00:00:00+01:00","tzname":"CET"}}',
    ),
    (time(12, 30, tzinfo=UTC_PLUS_0530), TAG_EXT, b'{"$time":"12:30:00+05:30"}'),
    (Decimal("1.10"), TAG_EXT, b'{"$decimal":"1.10"}'),
    (
        UUID("12345678-1234-5678-1234-567812345678"),
        TAG_EXT,
        b'{"$uuid":"12345678-1234-5678-1234-567812345678"}',
    ),
]


@pytest.mark.parametrize(("value", "tag", "payload"), TAG_CASES, ids=repr)
def test_tag_and_payload(value: Any, tag: str, payload: Any) -> None:
    got_tag, got_payload = CODEC.encode(value)
    assert got_tag == tag
    if isinstance(payload, float) and math.isnan(payload):
        assert math.isnan(got_payload)  # type: ignore[arg-type]
    else:
        assert got_payload == payload
        assert type(got_payload) is type(payload)
    assert_same(value, CODEC.decode(got_tag, got_payload))


def test_tags_are_the_documented_constants() -> None:
    assert (TAG_NONE, TAG_BOOL, TAG_INT, TAG_BIGINT, TAG_FLOAT) == ("n", "b", "i", "I", "f")
    assert (TAG_SPECIAL_FLOAT, TAG_STR, TAG_BYTES, TAG_JSON) == ("F", "s", "y", "j")
    assert (TAG_EXT, TAG_PICKLE) == ("x", "p")


def test_json_payload_is_plain_orjson() -> None:
    value = {"name": "alice", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    tag, payload = CODEC.encode(value)
    assert tag == TAG_JSON
    assert payload == orjson.dumps(value)
    assert orjson.loads(payload) == value  # type: ignore[arg-type]


def test_bytearray_and_memoryview_are_stored_as_bytes() -> None:
    assert CODEC.encode(bytearray(b"ab")) == (TAG_BYTES, b"ab")
    assert CODEC.encode(memoryview(b"ab")) == (TAG_BYTES, b"ab")
    assert type(CODEC.encode(memoryview(b"ab"))[1]) is bytes
    assert_same([b"ab", b"cd"], roundtrip([bytearray(b"ab"), memoryview(b"cd")]))
    strided = memoryview(b"abcdef")[::2]  # not contiguous
    assert CODEC.encode(strided) == (TAG_BYTES, b"ace")
    assert_same((b"ace",), roundtrip((strided,)))


def test_bool_is_never_an_int_and_int_never_a_float() -> None:
    assert_same([True, 1, 1.0, False, 0, 0.0], roundtrip([True, 1, 1.0, False, 0, 0.0]))
    assert_same({True: 1, 2: 2.0}, roundtrip({True: 1, 2: 2.0}))
    assert_same((True, 1, 1.0), roundtrip((True, 1, 1.0)))


def test_huge_ints_beyond_the_str_digit_limit() -> None:
    huge = 7**20000  # ~17,000 digits: beyond sys.get_int_max_str_digits()
    tag, payload = CODEC.encode(huge)
    assert tag == TAG_BIGINT
    assert CODEC.decode(tag, payload) == huge
    assert roundtrip([huge, -huge]) == [huge, -huge]


# 60,000 digits already splits five levels deep; 250,000 (seven levels, ~10 s
# of str() and int() for the reference values alone) runs under make stress.
@pytest.mark.parametrize(
    "digits",
    [
        1,
        1999,
        2000,
        2001,
        4300,
        4301,
        12345,
        60_000,
        pytest.param(250_000, marks=pytest.mark.stress),
    ],
)
def test_big_int_text_conversion_at_every_split(digits: int) -> None:
    # The conversions split numbers in halves above 2,000 digits / 6,000 bits;
    # sizes around those splits and the 4,300-digit limit of int() must be exact.
    # (A million digits converts in about half a second each way instead of
    # the quadratic minute of int(Decimal(text)): docs/encoding.md.)
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        for value in (10 ** (digits - 1), 10**digits - 1, 7 ** int(digits * 1.18) // 3):
            for signed in (value, -value):
                text = str(signed)
                assert int_to_text(signed) == text
                assert int_from_text(text) == signed
    finally:
        sys.set_int_max_str_digits(old)


TEMPORALS = [
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-3, seconds=7))),
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(microseconds=5))),
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(microseconds=-5))),
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2, microseconds=5), "odd")),
    datetime(2024, 1, 2, tzinfo=timezone(timedelta(0), "Z-name")),
    datetime(2024, 1, 2, fold=1),
    datetime(2024, 11, 3, 1, 30, tzinfo=NY),
    datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NY),
    datetime(2024, 7, 1, tzinfo=ZoneInfo("Europe/Paris")),
    date(1, 1, 1),
    date(2024, 2, 29),
    time(0, 0),
    time(23, 59, 59, 999999, tzinfo=UTC),
    time(1, 2, 3, tzinfo=NY),
    time(1, 2, 3, tzinfo=NAMED_TZ, fold=1),
]


@pytest.mark.parametrize("value", TEMPORALS, ids=repr)
def test_temporal_round_trip_keeps_tzinfo_and_fold(value: Any) -> None:
    assert_same(value, roundtrip(value))
    assert_same([value], roundtrip([value]))
    if isinstance(value, datetime | time) and value.tzinfo is not None:
        assert type(roundtrip(value).tzinfo) is type(value.tzinfo)
        assert roundtrip(value).tzname() == value.tzname()


def test_zoneinfo_comes_back_as_the_same_zone() -> None:
    value = datetime(2024, 3, 10, 12, tzinfo=NY)
    assert roundtrip(value).tzinfo is NY
    assert roundtrip(time(1, tzinfo=NY)).tzinfo is NY


@pytest.mark.parametrize(
    "text",
    ["1.10", "0", "-0", "1E+3", "1.000E-7", "NaN", "-NaN", "sNaN", "sNaN123", "Infinity", "-Inf"],
)
def test_decimal_is_exact(text: str) -> None:
    value = Decimal(text)
    assert str(roundtrip(value)) == str(value)
    assert str(roundtrip([value])[0]) == str(value)


# every supported scalar, and what it looks like inside each container
SCALARS = [
    None,
    True,
    False,
    0,
    -(2**63),
    2**90,
    -(2**90),
    1.5,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    "text",
    "",
    "$dollar",
    b"bytes",
    b"",
    date(2020, 1, 1),
    datetime(2020, 1, 1, 12, tzinfo=UTC),
    time(12, 0),
    Decimal("-0.00"),
    UUID(int=1),
    (),
    (1, "a"),
    frozenset(),
    frozenset({1, 2}),
]


@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
def test_every_scalar_round_trips_in_every_container(scalar: Any) -> None:
    containers = [
        scalar,
        [scalar],
        [[scalar, scalar]],
        {"k": scalar},
        {"$k": scalar},
        (scalar,),
        {"a": [{"b": (scalar, [scalar])}]},
        {scalar: scalar},
        {scalar: "v", "other": 1},
        {(scalar,): [scalar]},
        {scalar},
        frozenset({scalar}),
        {frozenset({scalar}), (scalar, 1)},
    ]
    for value in containers:
        assert_same(value, roundtrip(value))


def test_dict_order_is_kept() -> None:
    value = {"b": 1, "a": 2, 3: "x", "c": {"z": 1, "y": 2}}
    assert list(roundtrip(value)) == ["b", "a", 3, "c"]
    assert list(roundtrip(value)["c"]) == ["z", "y"]


def test_set_elements_are_written_in_canonical_order() -> None:
    assert CODEC.encode({"b", "c", "a"})[1] == b'{"$set":["a","b","c"]}'
    assert CODEC.encode({10, 2, -1})[1] == b'{"$set":[-1,2,10]}'
    assert CODEC.encode({2.5, -1.0})[1] == b'{"$set":[-1.0,2.5]}'
    # mixed types: ordered by each element's encoded text
    assert CODEC.encode({"a", 1, None})[1] == b'{"$set":["a",1,null]}'
    a = {frozenset({1, 2}), frozenset({3}), frozenset({1})}
    b = set(reversed(list(a)))
    assert CODEC.encode(a) == CODEC.encode(b)


def test_set_encoding_does_not_depend_on_the_hash_seed() -> None:
    script = textwrap.dedent(
        """
        import sys
        from keyshelf.codec import Codec
        values = [
            {"apple", "pear", "fig", "kiwi", "plum", "lime"},
            {"a", 1, 2.5, None, (1, "x"), b"z", frozenset({"q", "r", 3})},
        ]
        sys.stdout.write(repr([Codec().encode(v) for v in values]))
        """
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": ":".join(sys.path)},
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1


# --------------------------------------------------------------------------
# tag-like user dicts are escaped
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"$set": [1]},
        {"$tuple": []},
        {"$bytes": "eA=="},
        {"$map": [[1, 2]]},
        {"$unknown": 1},
        {"$": None},
        {"$datetime": "2024-01-01"},
        [{"$int": "5"}],
        {"outer": {"$float": "nan"}},
        ({"$set": [1]},),
        {1: {"$uuid": "x"}},
    ],
    ids=repr,
)
def test_tag_like_user_dicts_round_trip_as_dicts(value: Any) -> None:
    tag, payload = CODEC.encode(value)
    assert tag == TAG_EXT
    assert_same(value, CODEC.decode(tag, payload))


# --------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Plain(enum.Enum):
    A = "a"


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyDict(dict):  # type: ignore[type-arg]
    pass


class Point(NamedTuple):
    x: int
    y: int


class Opaque:
    pass


def _function() -> None:
    pass


REFUSED = [
    (object(), "object"),
    (lambda: 1, "function"),
    (_function, "function"),
    (1 + 2j, "complex"),
    (timedelta(seconds=1), "timedelta"),
    (Color.RED, "Color"),
    (Plain.A, "Plain"),
    (MyStr("x"), "MyStr"),
    (MyInt(1), "MyInt"),
    (MyDict(a=1), "MyDict"),
    (collections.OrderedDict(a=1), "OrderedDict"),
    (collections.defaultdict(list), "defaultdict"),
    (Point(1, 2), "Point"),
    (Opaque(), "Opaque"),
    (Opaque, "type"),
    (range(3), "range"),
    (iter([1]), "list_iterator"),
    (bytearray, "type"),
    ({1, Opaque()}, "Opaque"),
    ({Opaque(): 1}, "Opaque"),
    ([1, [2, {"a": Opaque()}]], "Opaque"),
    ({"a": [1, 2, object()]}, "object"),
    ((1, complex(1, 1)), "complex"),
    (frozenset({(1, Opaque())}), "Opaque"),
    ({"k": Color.RED}, "Color"),
    ([MyStr("x")], "MyStr"),
    ({MyStr("k"): 1}, "MyStr"),
    ([collections.OrderedDict()], "OrderedDict"),
    ("\ud800", "surrogate"),
    (["ok", "bad \udfff"], "surrogate"),
    ({"\ud800": 1}, "surrogate"),
]


@pytest.mark.parametrize(("value", "name"), REFUSED, ids=repr)
def test_unsupported_values_are_refused(value: Any, name: str) -> None:
    with pytest.raises(SerializationError) as info:
        CODEC.encode(value)
    message = str(info.value)
    assert message.startswith("Value is not JSON serializable")
    assert name in message
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)


def test_refusal_says_where_the_offender_is() -> None:
    with pytest.raises(SerializationError, match=r"object at \['a'\]\[2\]$"):
        CODEC.encode({"a": [1, 2, object()]})
    with pytest.raises(SerializationError, match=r"Opaque at \[1\]\[1\]\['k'\]$"):
        CODEC.encode((0, [1, {"k": Opaque()}]))
    with pytest.raises(SerializationError, match=r"Opaque at \['s'\] \(in a set\)$"):
        CODEC.encode({"s": {1, Opaque()}})
    with pytest.raises(SerializationError, match=r"Opaque \(in a dict key\)$"):
        CODEC.encode({(1, Opaque()): 1})
    with pytest.raises(SerializationError, match=r": complex$"):
        CODEC.encode(1j)


class FakeTz(tzinfo):
    def utcoffset(self, dt: Any) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: Any) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: Any) -> str:
        return "FAKE"


def test_unsupported_tzinfo_is_refused() -> None:
    for value in (datetime(2024, 1, 1, tzinfo=FakeTz()), time(1, tzinfo=FakeTz())):
        with pytest.raises(SerializationError, match=r"tzinfo of type .*FakeTz"):
            CODEC.encode(value)
        with pytest.raises(SerializationError, match="FakeTz"):
            CODEC.encode({"when": [value]})


def test_keyless_zoneinfo_is_refused() -> None:
    paths = [Path(root, "Europe", "Paris") for root in zoneinfo.TZPATH]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        pytest.skip("no system time zone file to load")
    with path.open("rb") as f:
        keyless = ZoneInfo.from_file(f)
    with pytest.raises(SerializationError, match="no key"):
        CODEC.encode(datetime(2024, 1, 1, tzinfo=keyless))


def test_refusal_of_a_deep_value_names_the_offender() -> None:
    value = nest(5000, lambda v: [v], leaf=Opaque())
    with pytest.raises(SerializationError, match="Opaque at"):
        CODEC.encode(value)


# --------------------------------------------------------------------------
# deep nesting
# --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [FAST_DEPTH - 1, FAST_DEPTH, FAST_DEPTH + 1, 300, 1100, 10_000])
@pytest.mark.parametrize(
    ("make", "tag"),
    [
        (lambda v: [v], TAG_JSON),
        (lambda v: {"k": v}, TAG_JSON),
        (lambda v: (v,), TAG_EXT),
        (lambda v: {1: v}, TAG_EXT),
        (lambda v: [{"$t": v}], TAG_EXT),
        (lambda v: frozenset({(v,)}), TAG_EXT),
    ],
    ids=["list", "dict", "tuple", "map", "escaped", "frozenset"],
)
def test_deep_nesting_round_trips(depth: int, make: Any, tag: str) -> None:
    value = nest(depth, make, leaf=b"leaf" if tag == TAG_EXT else "leaf")
    got_tag, payload = CODEC.encode(value)
    assert got_tag == tag
    assert_same(value, CODEC.decode(got_tag, payload))


def test_deep_path_writes_the_same_bytes_as_the_fast_path() -> None:
    samples = [
        nest(50, lambda v: [1, v, "x"], leaf={"k": [1.5, None]}),
        nest(30, lambda v: (v, {1: "a", "b": [2]}), leaf=b"\x00"),
        {"s": {3, 1, 2}, "f": frozenset({"a", 1}), "m": {None: 1}, "e": {"$x": 1}},
        [datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NY), Decimal("1.0"), 2**70, math.nan],
        {},
        [],
        {"$k": []},
    ]
    for value in samples:
        fast = CODEC.encode(value)
        uses_ext, deep = dump_deep(value)
        assert deep == fast[1]
        assert (TAG_EXT if uses_ext else TAG_JSON) == fast[0]


def test_deep_json_beyond_orjson_parser_limit_decodes() -> None:
    payload = b"[" * 5000 + b'{"a":[1,2.5,"x",true,null,{}]}' + b"]" * 5000
    value = CODEC.decode(TAG_JSON, payload)
    for _ in range(5000):
        value = value[0]
    assert_same({"a": [1, 2.5, "x", True, None, {}]}, value)


def test_encode_and_decode_work_close_to_the_recursion_limit() -> None:
    value = nest(150, lambda v: {"k": (v,)}, leaf=[1])
    tag, payload = CODEC.encode(value)
    results: list[Any] = []

    def recurse(n: int) -> None:
        if n:
            recurse(n - 1)
        else:
            results.append(CODEC.encode(value))
            results.append(CODEC.decode(tag, payload))

    recurse(sys.getrecursionlimit() - 200)
    assert results[0] == (tag, payload)
    assert_same(value, results[1])


# --------------------------------------------------------------------------
# property-based round trips
# --------------------------------------------------------------------------

fixed_offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
named_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8),
)
tzinfos = st.none() | st.just(UTC) | fixed_offsets | named_offsets | st.timezones()
folds = st.sampled_from([0, 1])
texts = st.text(st.characters(exclude_categories=("Cs",)))

hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.binary(),
    st.builds(lambda d, f: d.replace(fold=f), st.datetimes(timezones=tzinfos), folds),
    st.dates(),
    st.builds(lambda t, f: t.replace(fold=f), st.times(timezones=tzinfos), folds),
    st.decimals(allow_nan=True, allow_infinity=True).filter(lambda d: not d.is_snan()),
    st.sampled_from([Decimal("NaN"), Decimal("-0"), Decimal("1.10"), Decimal("1E+5")]),
    st.uuids(),
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
    max_leaves=8,
)
# not hashable: only outside sets and dict keys
scalars = hashable_scalars | st.binary().map(bytearray) | st.just(Decimal("-sNaN7"))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(texts, inner, max_size=5),
        st.dictionaries(st.text(max_size=3).map(lambda s: "$" + s), inner, max_size=1),
        st.dictionaries(hashables, inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
    ),
    max_leaves=30,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(texts.filter(lambda s: not s.startswith("$")), inner, max_size=5)
    ),
    max_leaves=30,
)


def _normalise(value: Any) -> Any:
    """What decode(encode(v)) must be: bytearray/memoryview become bytes."""
    if type(value) in (bytearray, memoryview):
        return bytes(value)
    if type(value) is list:
        return [_normalise(v) for v in value]
    if type(value) is dict:
        return {_normalise(k): _normalise(v) for k, v in value.items()}
    if type(value) is tuple:
        return tuple(_normalise(v) for v in value)
    return value


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_any_supported_value_round_trips_exactly(value: Any) -> None:
    tag, payload = CODEC.encode(value)
    assert_same(_normalise(value), CODEC.decode(tag, payload))
    # deterministic, and typed-equal to itself
    again = CODEC.encode(value)
    assert again == (tag, payload)
    assert values_equal(tag, payload, *again)
    assert checksum(tag, payload) == checksum(*again)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hashables, max_size=8))
def test_equal_sets_encode_identically_whatever_their_history(items: list[Any]) -> None:
    items = list(dict.fromkeys(items))  # no two equal items (1 and True would collapse)
    forward, backward = set(items), set(reversed(items))
    assert CODEC.encode(forward) == CODEC.encode(backward)
    assert CODEC.encode(frozenset(forward)) == CODEC.encode(frozenset(backward))


@settings(max_examples=300)
@given(json_values)
def test_plain_json_data_uses_the_json_tag(value: Any) -> None:
    tag, payload = CODEC.encode(value)
    if type(value) in (list, dict):
        assert tag == TAG_JSON
        assert payload == orjson.dumps(value)
    assert_same(value, CODEC.decode(tag, payload))


@settings(max_examples=200)
@given(values)
def test_payload_types_match_the_tag(value: Any) -> None:
    tag, payload = CODEC.encode(value)
    expected = {
        TAG_NONE: type(None),
        TAG_BOOL: int,
        TAG_INT: int,
        TAG_FLOAT: float,
        TAG_SPECIAL_FLOAT: str,
        TAG_BIGINT: str,
        TAG_STR: str,
        TAG_BYTES: bytes,
        TAG_JSON: bytes,
        TAG_EXT: bytes,
    }[tag]
    assert type(payload) is expected
    if tag in (TAG_JSON, TAG_EXT):
        orjson.loads(payload)  # type: ignore[arg-type]  # always valid JSON


# --------------------------------------------------------------------------
# decoding: tags, corrupt data, pickle
# --------------------------------------------------------------------------


def test_unknown_tag_is_refused_by_name() -> None:
    with pytest.raises(SerializationError, match="'z'"):
        CODEC.decode("z", b"")


@pytest.mark.parametrize(
    ("tag", "payload"),
    [
        (TAG_JSON, b"{not json"),
        (TAG_JSON, b"[" * 2000),
        (TAG_JSON, b"\xff\xfe"),
        (TAG_EXT, b'{"$nope":1}'),
        (TAG_EXT, b'{"$bytes":"***"}'),
        (TAG_EXT, b'{"$bytes":1}'),
        (TAG_EXT, b'{"$tuple":1}'),
        (TAG_EXT, b'{"$map":[[1]]}'),
        (TAG_EXT, b'{"$set":[[1]]}'),
        (TAG_EXT, b'{"$map":[[[1],2]]}'),
        (TAG_EXT, b'{"$datetime":"yesterday"}'),
        (TAG_EXT, b'{"$datetime":{"iso":"2024-01-01T00:00:00","zone":"No/Such_Zone"}}'),
        (TAG_EXT, b'{"$datetime":{"iso":"2024-01-01T00:00:00","zone":"../etc"}}'),
        (TAG_EXT, b'{"$date":5}'),
        (TAG_EXT, b'{"$decimal":"abc"}'),
        (TAG_EXT, b'{"$uuid":"nope"}'),
        (TAG_EXT, b'{"$int":"1.5"}'),
        (TAG_EXT, b'{"$float":"1.5"}'),
        (TAG_EXT, b"[" * 3000 + b'{"$int":"x"}' + b"]" * 3000),
        (TAG_SPECIAL_FLOAT, "1.5"),
        (TAG_BIGINT, "12a"),
        (TAG_BIGINT, "1e5"),
    ],
)
def test_corrupt_payloads_raise_serialization_error(tag: str, payload: Any) -> None:
    with pytest.raises(SerializationError):
        CODEC.decode(tag, payload)


def test_decode_accepts_backend_payload_representations() -> None:
    assert CODEC.decode(TAG_STR, b"caf\xc3\xa9") == "café"
    assert CODEC.decode(TAG_STR, memoryview(b"x")) == "x"
    assert CODEC.decode(TAG_INT, b"42") == 42
    assert CODEC.decode(TAG_INT, "42") == 42
    assert CODEC.decode(TAG_FLOAT, b"1.5") == 1.5
    assert CODEC.decode(TAG_BOOL, True) is True
    assert CODEC.decode(TAG_BOOL, 0) is False
    assert CODEC.decode(TAG_BOOL, b"1") is True
    assert type(CODEC.decode(TAG_BYTES, memoryview(b"ab"))) is bytes
    assert type(CODEC.decode(TAG_BYTES, bytearray(b"ab"))) is bytes
    assert CODEC.decode(TAG_BIGINT, str(2**70).encode()) == 2**70
    assert math.copysign(1, CODEC.decode(TAG_SPECIAL_FLOAT, b"-0.0")) == -1  # type: ignore[arg-type]
    assert CODEC.decode(TAG_JSON, '{"a":1}') == {"a": 1}
    assert CODEC.decode(TAG_EXT, memoryview(b'{"$tuple":[1]}')) == (1,)


class Custom:
    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return type(other) is Custom and other.n == self.n

    __hash__ = None  # type: ignore[assignment]


def test_default_codec_refuses_to_unpickle() -> None:
    tag, payload = PickleCodec().encode(Custom(1))
    assert tag == TAG_PICKLE
    with pytest.raises(SerializationError, match="opt in with codec='pickle'"):
        CODEC.decode(tag, payload)


def test_pickle_codec_round_trips_arbitrary_objects() -> None:
    pc = get_codec("pickle")
    assert isinstance(pc, PickleCodec)
    assert pc.name == "pickle"
    for value in [Custom(3), [Custom(1), {"a": Custom(2)}], collections.OrderedDict(a=1)]:
        tag, payload = pc.encode(value)
        assert tag == TAG_PICKLE
        back = pc.decode(tag, payload)
        assert back == value
        assert type(back) is type(value)


def test_pickle_codec_still_uses_typed_encoding_when_it_can() -> None:
    pc = PickleCodec()
    for value in [1, "s", {"a": (1, 2)}, b"raw", math.nan, [datetime(2020, 1, 1)]]:
        assert pc.encode(value)[0] != TAG_PICKLE
        assert_same(value, roundtrip(value, pc))


def test_pickle_codec_refuses_what_pickle_cannot_do() -> None:
    with pytest.raises(SerializationError, match=r"^Value is not JSON serializable.*pickled"):
        PickleCodec().encode(lambda: 1)
    with pytest.raises(SerializationError):
        PickleCodec().decode(TAG_PICKLE, b"not a pickle")


# --------------------------------------------------------------------------
# size, checksum, typed equality
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (None, 0),
        (True, 1),
        (False, 1),
        (7, 8),
        (2**63 - 1, 8),
        (2**64, 20),
        (1.5, 8),
        (math.nan, 3),
        (-0.0, 4),
        ("abc", 3),
        ("é", 2),
        ("🎉", 4),
        (b"\x00" * 10, 10),
        ([1, 2], 5),
        ((1,), 14),
    ],
    ids=repr,
)
def test_payload_size(value: Any, size: int) -> None:
    assert payload_size(*CODEC.encode(value)) == size


def test_payload_size_of_backend_representations() -> None:
    assert payload_size(TAG_BYTES, memoryview(b"abc")) == 3  # type: ignore[arg-type]
    assert payload_size(TAG_BOOL, True) == 1
    assert payload_size(TAG_STR, "") == 0


def test_checksum_is_stable_and_documented() -> None:
    assert checksum(TAG_STR, "hello") == (
        "blake2b:" + blake2b(b"s\x00hello", digest_size=16).hexdigest()
    )
    assert checksum(TAG_INT, 42) == "blake2b:" + blake2b(b"i\x0042", digest_size=16).hexdigest()
    assert checksum(TAG_FLOAT, 1.5) == (
        "blake2b:" + blake2b(b"f\x00?\xf8\x00\x00\x00\x00\x00\x00", digest_size=16).hexdigest()
    )
    assert checksum(TAG_NONE, None) == "blake2b:" + blake2b(b"n\x00", digest_size=16).hexdigest()
    assert checksum(TAG_BOOL, 1) == checksum(TAG_BOOL, True)
    # the same value stored by different backends
    assert checksum(TAG_STR, "é") == checksum(TAG_STR, "é".encode())
    assert checksum(TAG_BYTES, b"ab") == checksum(TAG_BYTES, memoryview(b"ab"))  # type: ignore[arg-type]
    assert checksum(TAG_INT, 1) != checksum(TAG_BOOL, 1) != checksum(TAG_FLOAT, 1.0)
    assert len(checksum(TAG_JSON, b"[]")) == len("blake2b:") + 32


def test_values_equal_is_typed() -> None:
    def eq(a: Any, b: Any) -> bool:
        return values_equal(*CODEC.encode(a), *CODEC.encode(b))

    assert eq(1, 1)
    assert not eq(1, 1.0)
    assert not eq(1, True)
    assert not eq(1.0, True)
    assert not eq(0.0, -0.0)
    assert eq(math.nan, math.nan)
    assert eq([1, {"a": (2,)}], [1, {"a": (2,)}])
    assert not eq([1], [1.0])
    assert not eq([1], (1,))
    assert eq({3, 1, 2}, {1, 2, 3})
    assert not eq("1", b"1")
    assert values_equal(TAG_BYTES, b"ab", TAG_BYTES, memoryview(b"ab"))  # type: ignore[arg-type]
    assert values_equal(TAG_STR, "é", TAG_STR, "é".encode())
    assert values_equal(TAG_BOOL, 1, TAG_BOOL, True)


# --------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------


def test_metadata_round_trip() -> None:
    assert CODEC.encode_metadata({}) is None
    assert CODEC.decode_metadata(None) == {}
    plain = {"owner": "me", "tags": ["a", "b"], "n": 1.0}
    data = CODEC.encode_metadata(plain)
    assert data is not None
    assert data.startswith(b"j")
    assert_same(plain, CODEC.decode_metadata(data))
    rich = {"when": datetime(2024, 1, 1, tzinfo=UTC), "ids": (1, 2), "$x": {1: b"y"}}
    data = CODEC.encode_metadata(rich)
    assert data is not None
    assert data.startswith(b"x")
    assert_same(rich, CODEC.decode_metadata(data))
    assert_same(rich, CODEC.decode_metadata(memoryview(data)))  # type: ignore[arg-type]
    assert_same({"$set": 1}, CODEC.decode_metadata(CODEC.encode_metadata({"$set": 1})))


def test_metadata_refusals() -> None:
    with pytest.raises(SerializationError, match="Metadata must be a dict"):
        CODEC.encode_metadata([1])  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match=r"^Value is not JSON serializable: object"):
        CODEC.encode_metadata({"a": object()})
    with pytest.raises(SerializationError):
        PickleCodec().encode_metadata({"a": Custom(1)})
    with pytest.raises(SerializationError):
        CODEC.decode_metadata(b"q{}")
    with pytest.raises(SerializationError):
        CODEC.decode_metadata(b"j[1]")


# --------------------------------------------------------------------------
# choosing and customising the codec
# --------------------------------------------------------------------------


def test_get_codec() -> None:
    default = get_codec(None)
    assert type(default) is Codec
    assert default.name == "typed"
    assert get_codec("typed") is default
    assert get_codec("json") is default
    assert isinstance(get_codec("pickle"), PickleCodec)
    mine = PickleCodec()
    assert get_codec(mine) is mine
    assert type(get_codec(PickleCodec)) is PickleCodec  # type: ignore[arg-type]
    for bad in ("msgpack", "", 3, object()):
        with pytest.raises(InvalidURLError, match="codec"):
            get_codec(bad)  # type: ignore[arg-type]


class Money(NamedTuple):
    amount: Decimal
    currency: str


class MoneyCodec(Codec):
    """A custom codec, as in dataknobs-kv's "custom serialization" example."""

    name = "money"

    def encode(self, value: object) -> tuple[str, Any]:
        if type(value) is Money:
            return "money", f"{value.amount} {value.currency}"
        return super().encode(value)

    def decode(self, tag: str, payload: Any) -> object:
        if tag == "money":
            amount, currency = payload.split()
            return Money(Decimal(amount), currency)
        return super().decode(tag, payload)


def test_custom_codec_subclass() -> None:
    mc = get_codec(MoneyCodec())
    assert roundtrip(Money(Decimal("9.99"), "EUR"), mc) == Money(Decimal("9.99"), "EUR")
    assert_same({"a": (1,)}, roundtrip({"a": (1,)}, mc))
    with pytest.raises(SerializationError):
        CODEC.decode("money", "1 EUR")
    assert payload_size("money", "1 EUR") == 5
