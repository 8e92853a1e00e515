"""Values on the command line: parsing what users type, showing what is stored.

The command line speaks one notation both ways: keyshelf's extended JSON
(``docs/encoding.md``). ``keyshelf get`` prints a value in it and
``keyshelf set`` reads it back, so ``42`` stays an int, ``3.0`` a float,
``"42"`` a string, and types JSON cannot carry are extension objects:
``{"$bytes": "YWI="}``, ``{"$tuple": [1, 2]}``, ``{"$int": "..."}`` and so on.
Whatever ``get --json`` prints can be given to ``set`` and stores the same
value again.

Parsing uses the standard library's JSON reader rather than orjson because
orjson silently reads integers beyond 64 bits as floats, which would change
the value the user typed. The parsed tree is then handed to the codec's own
extended-JSON decoder, so the CLI accepts exactly the documented format.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import sys
from typing import Any

import orjson

from keyshelf.codec import (
    TAG_BIGINT,
    TAG_BOOL,
    TAG_BYTES,
    TAG_EXT,
    TAG_FLOAT,
    TAG_INT,
    TAG_JSON,
    TAG_NONE,
    TAG_SPECIAL_FLOAT,
    TAG_STR,
    Codec,
)
from keyshelf.errors import SerializationError

__all__ = [
    "VALUE_FORMATS",
    "ValueInputError",
    "decode_value",
    "parse_delta",
    "parse_json_value",
    "parse_ttl",
    "pretty_json",
    "spaced_json",
    "value_json",
]

#: The typed codec keyshelf uses by default; the CLI formats values with it
#: so that what it prints is the documented encoding, byte for byte.
_CODEC = Codec()

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

#: How ``set``/``mset`` read a VALUE argument, by option name.
VALUE_FORMATS = ("json", "str", "bytes-hex", "bytes-b64")

_CORRUPT_PREFIX = "Corrupt stored value: "
_JSON_START = re.compile(r'\s*(?:[-{\["0-9]|true\b|false\b|null\b)')


class ValueInputError(ValueError):
    """Something typed on the command line cannot be read (a usage error)."""


# --------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    # The standard library reads NaN and Infinity, which are not JSON; the
    # extended form says what is meant without bending the JSON grammar.
    raise ValueInputError(
        f'{name} is not JSON: write {{"$float": "{_FLOAT_NAMES[name]}"}} for that float'
    )


_FLOAT_NAMES = {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        # 1e400 would silently become inf: refuse rather than change the value.
        name = "-inf" if value < 0 else "inf"
        raise ValueInputError(
            f'number {text[:40]} is out of range for a float (write {{"$float": "{name}"}} '
            "if infinity is meant)"
        )
    return value


def _digit_limit_error(what: str, digits: str) -> ValueInputError:
    # Python refuses to read integers longer than sys.get_int_max_str_digits()
    # (4300 by default) from text: reading them takes quadratic time.
    count = len(digits.strip().lstrip("+-"))
    return ValueInputError(
        f"{what} has {count} digits; an integer on the command line has at most "
        f"{sys.get_int_max_str_digits()} digits"
    )


def _int_literal(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _digit_limit_error("integer", text) from None


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueInputError(f"duplicate key {key!r} in a JSON object")
            seen.add(key)
    return result


def _wrap_big_ints(tree: Any) -> Any:
    """Write integers beyond 64 bits as ``{"$int": ...}`` for the codec reader."""
    t = type(tree)
    if t is int:
        return tree if _I64_MIN <= tree <= _I64_MAX else {"$int": str(tree)}
    if t is list:
        return [_wrap_big_ints(v) for v in tree]
    if t is dict:
        return {k: _wrap_big_ints(v) for k, v in tree.items()}
    return tree


def parse_json_value(text: str) -> Any:
    """Read one value in keyshelf's extended JSON, as typed by a user.

    Raises:
        ValueInputError: not JSON (with a hint for bare words such as
            ``hello``), a non-finite number (``1e400``; the explicit
            ``{"$float": "inf"}`` form is how to ask for one), an integer
            longer than Python reads from text (4300 digits by default),
            duplicate object keys, or an extension object the codec does not
            know.
    """
    try:
        tree = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_int_literal,
            object_pairs_hook=_unique_object,
        )
        data = json.dumps(
            _wrap_big_ints(tree), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    except json.JSONDecodeError as exc:
        if not _JSON_START.match(text):
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise ValueInputError(
                f"value {shown!r} is not JSON: quote a string (e.g. '\"{shown}\"') "
                "or pass --str to store the text as it is"
            ) from None
        raise ValueInputError(
            f"value is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ValueInputError("value is nested too deeply to read") from None
    try:
        return _CODEC.decode(TAG_EXT, data.encode("utf-8"))
    except SerializationError as exc:
        message = str(exc).removeprefix(_CORRUPT_PREFIX)
        raise ValueInputError(f"value is not valid extended JSON: {message}") from None


def decode_value(text: str, fmt: str) -> Any:
    """Turn a VALUE argument into the value to store, per ``--str`` and friends.

    ``fmt`` is one of :data:`VALUE_FORMATS`: ``json`` (the default, extended
    JSON), ``str`` (the text itself), ``bytes-hex`` / ``bytes-b64`` (bytes
    written in hex or standard base64; whitespace is ignored).

    Raises:
        ValueInputError: the text does not read in that format.
    """
    if fmt == "str":
        return text
    if fmt == "bytes-hex":
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ValueInputError(f"value {text[:40]!r} is not hexadecimal bytes") from None
    if fmt == "bytes-b64":
        compact = "".join(text.split())
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise ValueInputError(f"value {text[:40]!r} is not standard base64") from None
    return parse_json_value(text)


_TTL = re.compile(
    r"\s*(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan))"
    r"\s*(?P<unit>ms|s|m|h|d)?\s*",
    re.IGNORECASE,
)
_TTL_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int | float:
    """Read a TTL: seconds (``30``, ``1.5``) or a number with a unit.

    Units: ``ms``, ``s``, ``m``, ``h``, ``d``. Whether the number is usable
    (positive, at most the longest TTL) is left to the store, so the message
    is the store's own (``TTL must be positive``); a literal ``inf`` or
    ``nan`` is passed on for the store to refuse in its words.

    Raises:
        ValueInputError: the text is not a number, or a number too large to
            read: an integer beyond Python's digit limit, or a literal such
            as ``1e999`` that only a float's infinity could hold.
    """
    match = _TTL.fullmatch(text)
    if match is None:
        raise ValueInputError(
            f"invalid TTL {text!r}: give seconds (30, 1.5) or a number with a unit "
            "(500ms, 30s, 5m, 2h, 1d)"
        )
    number = match["number"]
    factor = _TTL_UNITS[(match["unit"] or "s").lower()]
    if re.fullmatch(r"[-+]?\d+", number) and factor >= 1:
        try:
            return int(number) * int(factor)
        except ValueError:
            raise _digit_limit_error(f"TTL {number[:20]}...", number) from None
    seconds = float(number) * factor
    if not math.isfinite(seconds) and number.lstrip("+-").lower() not in ("inf", "nan"):
        raise ValueInputError(f"TTL {text.strip()[:40]!r} is out of range")
    return seconds


_INT_AMOUNT = re.compile(r"\s*[-+]?[0-9]+\s*")
_FLOAT_AMOUNT = re.compile(r"\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*")


def parse_delta(text: str) -> int | float:
    """Read an increment: an int (``5``, ``-2``) or a finite float (``0.5``, ``1e3``).

    Only plain decimal notation is read (ASCII digits, an optional sign,
    fraction and exponent): no ``inf``/``nan``, no ``1_000``.

    Raises:
        ValueInputError: not a number, an integer beyond Python's digit
            limit, or a float literal out of range (``1e400``): adding
            infinity to a counter is never meant, so it is refused.
    """
    if _INT_AMOUNT.fullmatch(text):
        try:
            return int(text)
        except ValueError:
            raise _digit_limit_error("amount", text) from None
    if _FLOAT_AMOUNT.fullmatch(text) is None:
        raise ValueInputError(f"invalid amount {text[:40]!r}: give an int or a float")
    amount = float(text)
    if not math.isfinite(amount):
        raise ValueInputError(f"amount {text.strip()[:40]} is out of range for a float")
    return amount


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def value_json(value: Any) -> str:
    """A value as compact extended JSON text (one line, valid JSON).

    This is the codec's own encoding: containers are their stored payload,
    scalars that JSON cannot carry are extension objects.

    Raises:
        SerializationError: the value is not one the typed codec supports
            (only possible for stores opened with a custom or pickle codec).
    """
    tag, payload = _CODEC.encode(value)
    if tag in (TAG_STR, TAG_FLOAT):
        return orjson.dumps(payload).decode("utf-8")
    if tag == TAG_INT:
        return str(payload)
    if tag == TAG_BOOL:
        return "true" if payload else "false"
    if tag == TAG_NONE:
        return "null"
    if tag in (TAG_JSON, TAG_EXT):
        assert isinstance(payload, bytes)
        return payload.decode("utf-8")
    if tag == TAG_BYTES:
        assert isinstance(payload, bytes)
        return orjson.dumps({"$bytes": _b64(payload)}).decode("utf-8")
    if tag == TAG_BIGINT:
        return orjson.dumps({"$int": payload}).decode("utf-8")
    if tag == TAG_SPECIAL_FLOAT:
        # -0.0 is a plain JSON number; nan and the infinities are not.
        return "-0.0" if payload == "-0.0" else orjson.dumps({"$float": payload}).decode()
    raise SerializationError(f"Value is not JSON serializable: tag {tag!r}")


#: Containers whose one-line form fits in this many columns stay on one line.
_PRETTY_WIDTH = 80
#: Above this size a value is indented plainly: fitting lines costs a pass
#: per nesting level, which is only worth it for values people read whole.
_PRETTY_LIMIT = 1 << 20


def _flat(node: Any) -> str:
    return json.dumps(node, ensure_ascii=False, separators=(", ", ": "))


def _pretty(node: Any, indent: int) -> str:
    flat = _flat(node)
    if indent + len(flat) <= _PRETTY_WIDTH or not node or type(node) not in (list, dict):
        return flat
    pad = " " * (indent + 2)
    if type(node) is dict:
        items = [f"{pad}{_flat(k)}: {_pretty(v, indent + 2)}" for k, v in node.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [f"{pad}{_pretty(v, indent + 2)}" for v in node]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def spaced_json(text: str) -> str:
    """Compact JSON on one line with a space after ``,`` and ``:``, for table cells."""
    if not text.startswith(("{", "[")):
        return text
    try:
        return _flat(json.loads(text))
    except RecursionError:
        return text


def pretty_json(text: str) -> str:
    """Lay out compact JSON for people.

    A container that fits on one line stays on one line (with a space after
    ``,`` and ``:``), so ``{"$bytes": "YWI="}`` or ``[1, 2, 3]`` read as one
    item; larger ones get one member per line. Scalars are unchanged, and so
    is a value nested too deeply to lay out.
    """
    if not text.startswith(("{", "[")):
        return text
    try:
        tree = json.loads(text)
        if len(text) > _PRETTY_LIMIT:
            return json.dumps(tree, indent=2, ensure_ascii=False)
        return _pretty(tree, 0)
    except RecursionError:
        return text
