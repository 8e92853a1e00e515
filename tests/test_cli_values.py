"""Unit tests of the CLI's value notation: parsing, printing, TTLs and amounts."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from keyshelf.cli.values import (
    ValueInputError,
    decode_value,
    parse_delta,
    parse_json_value,
    parse_ttl,
    pretty_json,
    spaced_json,
    value_json,
)

SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(2**100),
    0.0,
    -0.0,
    1.5,
    1e16,
    5e-324,
    float("inf"),
    float("-inf"),
    "",
    "text",
    '"quoted" \\ back',
    "émoji 😀",
    b"",
    b"\x00\xff",
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": [None, True, 1.0]}},
    (1, 2),
    (),
    {1, 2, 3},
    frozenset({"a"}),
    {1: "a", None: b"x"},
    {"$set": [1]},
    Decimal("1.10"),
    Decimal("-0"),
    UUID(int=1),
    date(2024, 2, 29),
    datetime(2024, 1, 2, 3, 4, 5, 6),
    datetime(2024, 1, 2, tzinfo=UTC),
    datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    time(12, 30),
    [b"ab", (1,), {2}],
]


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_printed_values_read_back_exactly(value: Any) -> None:
    text = value_json(value)
    back = parse_json_value(text)
    assert repr(back) == repr(value) and type(back) is type(value)
    assert repr(parse_json_value(pretty_json(text))) == repr(value)
    assert repr(parse_json_value(spaced_json(text))) == repr(value)


def test_nan_round_trips() -> None:
    assert value_json(float("nan")) == '{"$float":"nan"}'
    assert math.isnan(parse_json_value('{"$float": "nan"}'))


def test_deeply_nested_values_round_trip() -> None:
    value: Any = 1
    for _ in range(300):
        value = [value]
    text = value_json(value)
    assert parse_json_value(text) == value
    assert pretty_json(text).count("\n") > 100


def test_pretty_keeps_short_containers_on_one_line() -> None:
    assert pretty_json('{"$bytes":"YWI="}') == '{"$bytes": "YWI="}'
    assert pretty_json("[1,2,3]") == "[1, 2, 3]"
    long = value_json({"k": "x" * 100, "l": [1, 2]})
    assert pretty_json(long) == '{\n  "k": "' + "x" * 100 + '",\n  "l": [1, 2]\n}'
    assert pretty_json('"s"') == '"s"' and pretty_json("42") == "42"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "is not JSON: quote a string"),
        ("tru", "is not JSON"),
        ("{'a': 1}", "not valid JSON"),
        ("[1,]", "not valid JSON"),
        ("", "is not JSON"),
        ("NaN", "NaN is not JSON"),
        ("-Infinity", '{"$float": "-inf"}'),
        ("1e999", "out of range"),
        ('{"a": 1, "a": 1}', "duplicate key 'a'"),
        ('{"$bogus": 1}', "unknown extended JSON type"),
        ('{"$bytes": 5}', "not valid extended JSON"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
)
def test_bad_json_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueInputError) as info:
        parse_json_value(text)
    assert message in str(info.value)


def test_big_integers_are_never_read_as_floats() -> None:
    # orjson reads integers beyond 64 bits as floats; the CLI must not.
    assert parse_json_value("18446744073709551616") == 2**64
    assert parse_json_value("[18446744073709551615]") == [2**64 - 1]
    assert parse_json_value('{"n": -9223372036854775809}') == {"n": -(2**63) - 1}


def test_decode_value_formats() -> None:
    assert decode_value("42", "json") == 42
    assert decode_value("42", "str") == "42"
    assert decode_value("00 ff\n", "bytes-hex") == b"\x00\xff"
    assert decode_value("AP8=\n", "bytes-b64") == b"\x00\xff"
    with pytest.raises(ValueInputError):
        decode_value("AP8", "bytes-b64")  # missing padding


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("1.5", 1.5),
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1.5h", 5400.0),
        (" 10 ", 10),
        ("0", 0),
        ("-1", -1),
    ],
)
def test_parse_ttl(text: str, seconds: float) -> None:
    value = parse_ttl(text)
    assert value == seconds
    assert type(value) is type(seconds)


@pytest.mark.parametrize("text", ["abc", "", "1x", "h", "1 2", "--5"])
def test_parse_ttl_refuses_non_numbers(text: str) -> None:
    with pytest.raises(ValueInputError, match="invalid TTL"):
        parse_ttl(text)


def test_parse_ttl_leaves_range_checks_to_the_store() -> None:
    assert math.isinf(parse_ttl("inf"))
    assert math.isnan(parse_ttl("nan"))


def test_parse_delta() -> None:
    assert parse_delta("5") == 5 and type(parse_delta("5")) is int
    assert parse_delta("-2") == -2
    assert parse_delta("0.5") == 0.5
    assert parse_delta("1e3") == 1000.0 and type(parse_delta("1e3")) is float
    assert parse_delta(str(2**70)) == 2**70
    with pytest.raises(ValueInputError, match="invalid amount"):
        parse_delta("ten")
