"""Values <-> ``(tag, payload)``: the typed encoding every backend stores.

A value is encoded to a one-letter *tag* and a *payload* that a backend stores
natively (ints as integers, so counters can be incremented in SQL; bytes raw,
never base64). ``docs/encoding.md`` is the format's specification, written for
readers in other languages; this module is its reference implementation.

====  ======================  =================================================
tag   payload                 value
====  ======================  =================================================
n     ``None``                ``None``
b     ``int`` 0 or 1          ``bool``
i     ``int`` (signed 64-bit) ``int`` in ``[-2**63, 2**63)``
I     ``str`` (decimal)       any other ``int``
f     ``float``               finite ``float`` other than ``-0.0``
F     ``str``                 ``nan``, ``inf``, ``-inf``, ``-0.0``
s     ``str``                 ``str``
y     ``bytes``               ``bytes``, ``bytearray``, ``memoryview``
j     ``bytes`` (JSON)        ``list``/``dict`` of plain JSON data
x     ``bytes`` (ext. JSON)   anything else supported, e.g. a ``tuple``
p     ``bytes`` (pickle)      only with :class:`PickleCodec` (opt-in)
====  ======================  =================================================

Guarantees:

* ``decode(*encode(v))`` equals ``v`` with the same type at every level
  (``True`` stays ``True``, ``3.0`` stays a float, ``-0.0`` keeps its sign,
  ``Decimal("1.10")`` its exponent, a ``datetime`` its ``tzinfo`` and ``fold``,
  dicts their order). ``bytearray`` and ``memoryview`` come back as ``bytes``.
* Types are checked exactly: subclasses (``IntEnum``, ``OrderedDict``, a
  ``str`` subclass ...) and every other type raise :class:`SerializationError`
  (a ``TypeError`` and a ``ValueError``) whose message starts with
  ``Value is not JSON serializable`` and names the type and where it was.
* Encoding is deterministic: the same value gives the same ``(tag, payload)``
  in every process (sets are written in a canonical order), so
  :func:`checksum` and :func:`values_equal` agree across backends.
* Nesting depth is limited only by memory. Values up to ``FAST_DEPTH`` levels
  take the fast path (one orjson call); deeper ones a slower iterative path
  that never raises ``RecursionError``.
* Decoding never runs code: pickle (tag ``p``) is refused unless the store was
  opened with ``codec="pickle"``.
"""

from __future__ import annotations

import base64
import pickle
import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from math import copysign, isnan
from typing import Any, ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from keyshelf._bigint import int_from_text, int_to_text
from keyshelf._show import show
from keyshelf._stored_value import (
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
    Payload,
    checksum,
    payload_size,
    values_equal,
)
from keyshelf.errors import InvalidURLError, SerializationError

__all__ = [
    "FAST_DEPTH",
    "TAG_BIGINT",
    "TAG_BOOL",
    "TAG_BYTES",
    "TAG_EXT",
    "TAG_FLOAT",
    "TAG_INT",
    "TAG_JSON",
    "TAG_NONE",
    "TAG_PICKLE",
    "TAG_SPECIAL_FLOAT",
    "TAG_STR",
    "Codec",
    "Payload",
    "PickleCodec",
    "checksum",
    "get_codec",
    "payload_size",
    "values_equal",
]


#: Containers nested deeper than this (in JSON levels) are encoded and decoded
#: by the iterative slow path. It keeps the recursive fast path well inside
#: orjson's limits (254 levels for dumps, 1024 for loads) and Python's stack.
FAST_DEPTH = 200

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_PICKLE_PROTOCOL = 5
_REFUSED = "Value is not JSON serializable"

_dumps = orjson.dumps
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_JSONEncodeError = orjson.JSONEncodeError

_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_SPECIAL_FLOATS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "-0.0": -0.0}


class _RefusedError(Exception):
    """Internal: the value holds something the typed codec cannot encode."""


class _CycleError(Exception):
    """Internal: the value contains itself; its message is the refusal's."""


class _TooDeepError(Exception):
    """Internal: the value is deeper than FAST_DEPTH; use the iterative path."""


def _corrupt(what: str) -> SerializationError:
    return SerializationError(f"Corrupt stored value: {what}")


# --------------------------------------------------------------------------
# scalars beyond JSON: value <-> extended JSON object
# --------------------------------------------------------------------------


def _int_text(n: int) -> str:
    return int_to_text(n)


def _text_int(s: object) -> int:
    if type(s) is not str or _INT_TEXT.fullmatch(s) is None:
        raise _corrupt(f"bad integer text {s!r:.60}")
    return int_from_text(s)


def _tz_members(tz: object) -> dict[str, Any]:
    """Extra members needed to rebuild ``tz``; raises _RefusedError if unsupported."""
    if tz is UTC:
        return {}
    if type(tz) is timezone:
        name = tz.tzname(None)
        if name == timezone(tz.utcoffset(None)).tzname(None):
            return {}
        return {"tzname": name}
    if type(tz) is ZoneInfo and tz.key is not None:
        return {"zone": tz.key}
    raise _RefusedError


def _enc_temporal(tag: str, value: datetime | time) -> dict[str, Any]:
    iso = value.isoformat()
    tz = value.tzinfo
    members = {} if tz is None else _tz_members(tz)
    if value.fold:
        members["fold"] = 1
    if not members:
        return {tag: iso}
    return {tag: {"iso": iso, **members}}


def _enc_datetime(value: Any) -> dict[str, Any]:
    return _enc_temporal("$datetime", value)


def _enc_time(value: Any) -> dict[str, Any]:
    return _enc_temporal("$time", value)


def _enc_bytes(value: Any) -> dict[str, Any]:
    return {"$bytes": base64.b64encode(value).decode("ascii")}


def _view_bytes(view: memoryview) -> bytes:
    """The bytes of a memoryview; a released one is refused, not a bare ValueError."""
    try:
        return view.tobytes()
    except ValueError as exc:
        raise SerializationError(f"{_REFUSED}: memoryview ({exc})") from None


# Non-container types that only the extended encoding can carry.
_EXT_SCALARS: dict[type, Any] = {
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    memoryview: lambda v: _enc_bytes(_view_bytes(v)),  # any layout: read as bytes
    datetime: _enc_datetime,
    date: lambda v: {"$date": v.isoformat()},
    time: _enc_time,
    Decimal: lambda v: {"$decimal": str(v)},
    UUID: lambda v: {"$uuid": str(v)},
}
_EXT_CONTAINERS = (tuple, set, frozenset)
_EXT_TYPES = frozenset((*_EXT_SCALARS, *_EXT_CONTAINERS))


_FRACTIONAL_OFFSET = re.compile(r"([+-])([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6})$")


def _from_iso(kind: type[datetime] | type[time], text: str) -> Any:
    result = kind.fromisoformat(text)
    # CPython 3.11 reads "+00:00:00.000005" as UTC: rebuild such offsets here.
    m = _FRACTIONAL_OFFSET.search(text) if result.tzinfo is not None else None
    if m is not None:
        sign, h, mi, sec, us = m.groups()
        offset = timedelta(hours=int(h), minutes=int(mi), seconds=int(sec), microseconds=int(us))
        result = result.replace(tzinfo=timezone(-offset if sign == "-" else offset))
    return result


def _dec_temporal(kind: type[datetime] | type[time], value: object) -> Any:
    if type(value) is str:
        return _from_iso(kind, value)
    if type(value) is not dict or type(value.get("iso")) is not str:
        raise _corrupt(f"bad ${kind.__name__} {value!r:.80}")
    result = _from_iso(kind, value["iso"])
    fold = value.get("fold", 0)
    if fold not in (0, 1):
        raise _corrupt(f"bad fold {fold!r:.20}")
    if "zone" in value:
        result = result.replace(tzinfo=_zone(value["zone"]))
    elif "tzname" in value:
        offset = result.utcoffset()
        if offset is None:
            raise _corrupt(f"tzname without offset in {value!r:.80}")
        result = result.replace(tzinfo=timezone(offset, value["tzname"]))
    return result.replace(fold=fold) if fold else result


def _zone(key: object) -> ZoneInfo:
    if type(key) is not str:
        raise _corrupt(f"bad time zone {key!r:.40}")
    try:
        return ZoneInfo(key)
    except ZoneInfoNotFoundError:
        raise SerializationError(
            f"Unknown time zone {key!r:.60}: not in this machine's tz database (pip install tzdata)"
        ) from None


def _dec_bytes(value: object) -> bytes:
    if type(value) is not str:
        raise _corrupt("$bytes must hold a base64 string")
    return base64.b64decode(value, validate=True)


def _dec_float(value: object) -> float:
    if type(value) is not str or value not in _SPECIAL_FLOATS:
        raise _corrupt(f"bad $float {value!r:.20}")
    return _SPECIAL_FLOATS[value]


def _dec_str_arg(kind: Any) -> Any:
    def decode(value: object) -> Any:
        if type(value) is not str:
            raise _corrupt(f"{kind.__name__} must be written as a string")
        return kind(value)

    return decode


_EXT_SCALAR_DECODERS: dict[str, Any] = {
    "$bytes": _dec_bytes,
    "$int": _text_int,
    "$float": _dec_float,
    "$datetime": lambda v: _dec_temporal(datetime, v),
    "$date": _dec_str_arg(date.fromisoformat),
    "$time": lambda v: _dec_temporal(time, v),
    "$decimal": _dec_str_arg(Decimal),
    "$uuid": _dec_str_arg(UUID),
}
_EXT_CONTAINER_TAGS = {"$tuple": tuple, "$set": set, "$frozenset": frozenset}


def _set_order(items: set[Any] | frozenset[Any]) -> list[Any]:
    """The canonical order of a set's elements (independent of hash seeds).

    All ``str``, all ``int``, all ``bytes`` or all non-NaN ``float``: ascending.
    Anything else: ascending by each element's encoded JSON text.
    """
    if len(items) < 2:
        return list(items)
    first = type(next(iter(items)))
    if first is str or first is int or first is bytes:
        if all(type(e) is first for e in items):
            return sorted(items)
    elif first is float and all(type(e) is float and not isnan(e) for e in items):
        return sorted(items)
    return sorted(items, key=_ext_text)


def _ext_text(value: object) -> bytes:
    """The extended JSON text of one value (used to order set elements)."""
    try:
        return _dumps(_to_ext(value, 0))
    except (_TooDeepError, RecursionError):
        from ._deep_json import dump_deep  # see _encode_tree

        return dump_deep(value)[1]


# --------------------------------------------------------------------------
# the fast, recursive path
# --------------------------------------------------------------------------


# _plain_dict and _plain_list answer: is this JSON-native data with no tag-like
# dict, so that orjson may dump it as it is? They may answer False before
# looking at everything (the extended encoder then checks the rest) and raise
# _RefusedError for unsupported data met first. They are the hot path of every
# set of a dict or list: two flat loops, no allocation, common types first.
# They leave one rule to orjson: a dict key must be an exact str (orjson raises
# JSONEncodeError for any other key, str subclasses included), and every
# caller then takes _to_ext, which maps such a dict ("$map"). Not checking the
# keys here saves a third of the walk.


def _plain_dict(d: dict[Any, Any], depth: int) -> bool:
    if depth >= FAST_DEPTH:
        raise _TooDeepError
    if len(d) == 1:
        for k in d:
            if type(k) is not str or k[:1] == "$":
                return False
    depth += 1
    for x in d.values():
        t = type(x)
        if t is str:
            continue
        if t is int:
            if _I64_MIN <= x <= _I64_MAX:
                continue
            return False
        if t is bool or x is None:
            continue
        if t is float:
            if x - x == 0.0:  # finite; -0.0 is fine inside JSON
                continue
            return False
        if t is dict:
            if _plain_dict(x, depth):
                continue
            return False
        if t is list:
            # A list of str (tags, roles) is checked here, without a call.
            if depth >= FAST_DEPTH:
                raise _TooDeepError  # as _plain_list would
            for y in x:
                if type(y) is not str:
                    if _plain_list(x, depth):
                        break
                    return False
            continue
        if t in _EXT_TYPES:
            return False
        raise _RefusedError
    return True


def _plain_list(items: list[Any], depth: int) -> bool:
    if depth >= FAST_DEPTH:
        raise _TooDeepError
    depth += 1
    for x in items:
        t = type(x)
        if t is str:
            continue
        if t is int:
            if _I64_MIN <= x <= _I64_MAX:
                continue
            return False
        if t is bool or x is None:
            continue
        if t is float:
            if x - x == 0.0:
                continue
            return False
        if t is dict:
            if _plain_dict(x, depth):
                continue
            return False
        if t is list:
            if _plain_list(x, depth):
                continue
            return False
        if t in _EXT_TYPES:
            return False
        raise _RefusedError
    return True


def _to_ext(x: Any, depth: int) -> Any:
    """Convert a value to its extended-JSON tree (JSON-native objects only)."""
    t = type(x)
    if t is str or t is bool or x is None:
        return x
    if t is int:
        return x if _I64_MIN <= x <= _I64_MAX else {"$int": _int_text(x)}
    if t is float:
        return x if x - x == 0.0 else {"$float": repr(x)}
    if depth >= FAST_DEPTH and (t is list or t is dict or t in _EXT_CONTAINERS):
        raise _TooDeepError
    if t is list:
        return [_to_ext(v, depth + 1) for v in x]
    if t is dict:
        if _plain_keys(x):
            return {k: _to_ext(v, depth + 1) for k, v in x.items()}
        return {"$map": [[_to_ext(k, depth + 3), _to_ext(v, depth + 3)] for k, v in x.items()]}
    if t is tuple:
        return {"$tuple": [_to_ext(v, depth + 2) for v in x]}
    if t is set or t is frozenset:
        tag = "$set" if t is set else "$frozenset"
        return {tag: [_to_ext(v, depth + 2) for v in _set_order(x)]}
    encode = _EXT_SCALARS.get(t)
    if encode is None:
        raise _RefusedError
    return encode(x)


def _plain_keys(d: dict[Any, Any]) -> bool:
    """True if ``d`` can be a JSON object: str keys, and not tag-like."""
    for k in d:
        if type(k) is not str:
            return False
    return not (len(d) == 1 and next(iter(d))[:1] == "$")


def _from_ext(x: Any, depth: int) -> Any:
    """Rebuild a value from its extended-JSON tree (as parsed by orjson)."""
    t = type(x)
    if t is list:
        if depth >= FAST_DEPTH:
            raise _TooDeepError
        depth += 1
        return [
            v if (type(v) is not list and type(v) is not dict) else _from_ext(v, depth) for v in x
        ]
    if t is not dict:
        return x
    if depth >= FAST_DEPTH:
        raise _TooDeepError
    depth += 1
    if len(x) == 1:
        ((key, value),) = x.items()
        if key[:1] == "$":
            return _from_ext_object(key, value, depth)
    return {
        k: v if (type(v) is not list and type(v) is not dict) else _from_ext(v, depth)
        for k, v in x.items()
    }


def _from_ext_object(key: str, value: Any, depth: int) -> Any:
    kind = _EXT_CONTAINER_TAGS.get(key)
    if kind is not None:
        if type(value) is not list:
            raise _corrupt(f"{key} must hold an array")
        return kind(_from_ext(v, depth + 1) for v in value)
    if key == "$map":
        if type(value) is not list:
            raise _corrupt("$map must hold an array")
        result = {}
        for pair in value:
            if type(pair) is not list or len(pair) != 2:
                raise _corrupt("$map entries must be [key, value] arrays")
            result[_from_ext(pair[0], depth + 1)] = _from_ext(pair[1], depth + 1)
        return result
    decode = _EXT_SCALAR_DECODERS.get(key)
    if decode is None:
        raise _corrupt(f"unknown extended JSON type {key!r:.40}")
    return decode(value)


# --------------------------------------------------------------------------
# refusals: find the offending part and say where it is
# --------------------------------------------------------------------------


def _type_name(t: type) -> str:
    if t.__module__ == "builtins":
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


def _leaf_problem(x: Any) -> str | None:
    """Why a non-container value cannot be encoded, or None if it can."""
    t = type(x)
    if t is str:
        return None if x.isascii() or not _SURROGATE.search(x) else "str with a lone surrogate"
    if t is datetime or t is time:
        tz = x.tzinfo
        if tz is None or (type(tz) is timezone) or (type(tz) is ZoneInfo and tz.key is not None):
            return None
        if type(tz) is ZoneInfo:
            return f"{t.__name__} with a ZoneInfo that has no key"
        return f"{t.__name__} with a tzinfo of type {_type_name(type(tz))}"
    if t in (type(None), bool, int, float) or t in _EXT_SCALARS:
        return None
    return _type_name(t)


def _refusal(root: Any) -> SerializationError:
    """The error for a value the typed codec refuses, naming type and place."""
    stack: list[tuple[Any, str, str]] = [(root, "", "")]
    while stack:
        x, path, role = stack.pop()
        t = type(x)
        if t is dict:
            for k, v in reversed(x.items()):
                stack.append((v, path if role else f"{path}[{k!r:.40}]", role))
                stack.append((k, path, role or " (in a dict key)"))
        elif t is list or t is tuple:
            for i in range(len(x) - 1, -1, -1):
                stack.append((x[i], path if role else f"{path}[{i}]", role))
        elif t is set or t is frozenset:
            stack.extend((e, path, role or " (in a set)") for e in x)
        else:
            problem = _leaf_problem(x)
            if problem is not None:
                where = f" at {path}" if path else ""
                return SerializationError(f"{_REFUSED}: {problem}{where}{role}")
    return SerializationError(f"{_REFUSED}: {_type_name(type(root))}")


# --------------------------------------------------------------------------
# whole values
# --------------------------------------------------------------------------


def _encode_tree(value: Any) -> tuple[str, bytes]:
    """Encode a container or extended scalar to ("j" | "x", JSON bytes)."""
    try:
        t = type(value)
        if (t is dict and _plain_dict(value, 0)) or (t is list and _plain_list(value, 0)):
            try:
                return TAG_JSON, _dumps(value)
            except _JSONEncodeError:
                pass  # a key that is not an exact str (see _plain_dict), or bad text
        return TAG_EXT, _dumps(_to_ext(value, 0))
    except (_TooDeepError, RecursionError):
        pass
    except _CycleError as exc:  # met while ordering a set's elements
        raise SerializationError(str(exc)) from None
    except (_RefusedError, _JSONEncodeError):
        raise _refusal(value) from None
    # The deep path reuses this module's helpers, so it imports this module:
    # it is imported here, when a value is that deep, never at import time.
    from ._deep_json import dump_deep

    try:
        uses_ext, data = dump_deep(value)
    except _CycleError as exc:
        raise SerializationError(str(exc)) from None
    except (_RefusedError, _JSONEncodeError):
        raise _refusal(value) from None
    except RecursionError:  # only via deeply nested, mixed-type sets
        raise SerializationError(f"{_REFUSED}: sets nested too deeply to order") from None
    return (TAG_EXT if uses_ext else TAG_JSON), data


def _decode_json(payload: Any) -> Any:
    try:
        return _loads(payload)
    except _JSONDecodeError:
        pass
    from ._deep_json import parse_deep  # see _encode_tree

    try:
        return parse_deep(payload)
    except (UnicodeDecodeError, _JSONDecodeError) as exc:
        raise _corrupt(f"invalid JSON: {exc}") from exc


def _decode_ext(payload: Any) -> Any:
    tree = _decode_json(payload)
    try:
        try:
            return _from_ext(tree, 0)
        except (_TooDeepError, RecursionError):
            from ._deep_json import from_ext_deep  # see _encode_tree

            return from_ext_deep(tree)
    except SerializationError:
        raise
    except Exception as exc:
        # bad ISO text or Decimal, unknown zone, unhashable set element or key ...
        raise _corrupt(f"invalid extended JSON: {exc!r}") from exc


def _to_text(payload: Any) -> str:
    if type(payload) is str:
        return payload
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload).decode("utf-8")
    raise _corrupt(f"expected text, got {type(payload).__name__}")


class Codec:
    """The default, typed codec: exact types, no pickle, documented format.

    Subclass it to customise (dataknobs-kv's "custom serialization"): override
    :meth:`encode` to return your own tag for your types and call
    ``super().encode`` for the rest, and :meth:`decode` likewise. Single ASCII
    letters are reserved for keyshelf's tags; use longer tags for your own.
    A payload must be one of ``None``, ``int`` (64-bit), ``float``, ``str`` or
    ``bytes``.

    Instances are stateless and thread-safe.
    """

    name: ClassVar[str] = "typed"

    def encode(self, value: object) -> tuple[str, Payload]:
        """Encode ``value`` to ``(tag, payload)``.

        Raises:
            SerializationError: the value (or something inside it) is not a
                supported type; nothing about the value is changed.
        """
        v: Any = value
        t = type(v)
        if t is str:
            if v.isascii() or not _SURROGATE.search(v):
                return TAG_STR, v
            raise _refusal(v)
        if t is int:
            if _I64_MIN <= v <= _I64_MAX:
                return TAG_INT, v
            return TAG_BIGINT, _int_text(v)
        if t is dict:
            # _encode_tree's common case, inlined: a plain JSON dict is one walk
            # and one dump. Anything else (a tag to add, a value to refuse, a
            # tree too deep, text orjson refuses) takes _encode_tree from the
            # start, which decides it in full.
            try:
                if _plain_dict(v, 0):
                    return TAG_JSON, _dumps(v)
            except (_TooDeepError, RecursionError, _RefusedError, _JSONEncodeError):
                pass
            return _encode_tree(v)
        if t is list:
            return _encode_tree(v)
        if t is float:
            # finite ("v - v" is nan for inf and nan) and not -0.0
            if v - v == 0.0 and (v or copysign(1.0, v) > 0.0):
                return TAG_FLOAT, v
            return TAG_SPECIAL_FLOAT, repr(v)
        if t is bool:
            return TAG_BOOL, 1 if v else 0
        if v is None:
            return TAG_NONE, None
        if t is bytes:
            return TAG_BYTES, v
        if t is bytearray:
            return TAG_BYTES, bytes(v)
        if t is memoryview:
            return TAG_BYTES, _view_bytes(v)
        if t in _EXT_TYPES:
            return _encode_tree(v)
        raise _refusal(value)

    def decode(self, tag: str, payload: Payload) -> object:
        """Rebuild the value stored as ``(tag, payload)``.

        Backends may hand back text payloads as ``bytes`` and binary ones as
        ``memoryview``/``bytearray``; both are accepted.

        Raises:
            SerializationError: unknown tag, a pickle payload (``p``) without
                the pickle codec, or a corrupt payload.
        """
        if tag == TAG_STR:
            return payload if type(payload) is str else _to_text(payload)
        if tag == TAG_INT:
            return payload if type(payload) is int else int(payload)  # type: ignore[arg-type]
        if tag == TAG_JSON:
            return _decode_json(payload)
        if tag == TAG_FLOAT:
            return payload if type(payload) is float else float(payload)  # type: ignore[arg-type]
        if tag == TAG_BOOL:
            return int(payload) == 1  # type: ignore[arg-type]
        if tag == TAG_EXT:
            return _decode_ext(payload)
        if tag == TAG_BYTES:
            return payload if type(payload) is bytes else bytes(payload)  # type: ignore[arg-type]
        if tag == TAG_NONE:
            return None
        if tag == TAG_SPECIAL_FLOAT:
            text = _to_text(payload)
            if text not in _SPECIAL_FLOATS:
                raise _corrupt(f"bad special float {text!r:.20}")
            return _SPECIAL_FLOATS[text]
        if tag == TAG_BIGINT:
            return _text_int(_to_text(payload))
        if tag == TAG_PICKLE:
            raise SerializationError(
                "Refusing to unpickle a value stored with the pickle codec: "
                "unpickling can run arbitrary code; opt in with codec='pickle' "
                "only for data you trust"
            )
        raise SerializationError(f"Unknown value tag {tag!r}: not written by this codec")

    def encode_metadata(self, metadata: dict[str, Any]) -> bytes | None:
        """Encode user metadata: ``None`` for ``{}``, else one tagged blob.

        The first byte says how to read the rest: ``b"j"`` plain JSON, ``b"x"``
        extended JSON (same rules as values; pickle is never used).

        Raises:
            SerializationError: ``metadata`` is not a dict, or holds a value
                the typed codec refuses.
        """
        if type(metadata) is not dict:
            raise SerializationError(f"Metadata must be a dict, not {_type_name(type(metadata))}")
        if not metadata:
            return None
        try:
            tag, data = _encode_tree(metadata)
        except SerializationError as exc:
            raise SerializationError(f"{exc} (in metadata)") from None
        return (b"j" if tag == TAG_JSON else b"x") + data

    def decode_metadata(self, data: bytes | None) -> dict[str, Any]:
        """Decode what :meth:`encode_metadata` wrote; ``{}`` for ``None``."""
        if data is None:
            return {}
        data = bytes(data)
        kind, body = data[:1], data[1:]
        if kind == b"j":
            result = _decode_json(body)
        elif kind == b"x":
            result = _decode_ext(body)
        else:
            raise _corrupt(f"unknown metadata format {kind!r}")
        if type(result) is not dict:
            raise _corrupt("metadata is not an object")
        return result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class PickleCodec(Codec):
    """Typed codec plus pickle (tag ``p``) for values it refuses. Opt-in only.

    Every value the typed codec accepts is still stored in the typed format;
    only the rest is pickled (protocol 5). Decoding ``p`` runs
    :func:`pickle.loads`, which can execute arbitrary code: use this codec
    only for stores whose every writer you trust. Metadata never uses pickle.
    """

    name: ClassVar[str] = "pickle"

    def encode(self, value: object) -> tuple[str, Payload]:
        """Typed encoding if possible, else ``("p", pickle bytes)``."""
        try:
            return super().encode(value)
        except SerializationError as typed_error:
            try:
                return TAG_PICKLE, pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
            except Exception as exc:
                raise SerializationError(
                    f"{typed_error} and cannot be pickled either: {exc}"
                ) from exc

    def decode(self, tag: str, payload: Payload) -> object:
        """As :meth:`Codec.decode`, and unpickles ``p`` payloads."""
        if tag == TAG_PICKLE:
            if not isinstance(payload, bytes | bytearray | memoryview):
                raise _corrupt("pickle payload is not bytes")
            try:
                return pickle.loads(payload)
            except Exception as exc:
                raise _corrupt(f"cannot unpickle: {exc!r}") from exc
        return super().decode(tag, payload)


_DEFAULT = Codec()
_PICKLE = PickleCodec()


def get_codec(codec: str | Codec | None) -> Codec:
    """Resolve the ``codec=`` option of ``open()``.

    ``None``, ``"typed"`` and ``"json"`` give the shared default codec,
    ``"pickle"`` the pickle opt-in, a :class:`Codec` instance itself and a
    :class:`Codec` subclass a new instance of it.

    Raises:
        InvalidURLError: anything else.
    """
    if codec is None or codec in ("typed", "json"):
        return _DEFAULT
    if codec == "pickle":
        return _PICKLE
    if isinstance(codec, Codec):
        return codec
    if isinstance(codec, type) and issubclass(codec, Codec):
        return codec()
    raise InvalidURLError(
        f"Unknown codec {show(codec)}: use 'typed' (the default), 'pickle', "
        "or a keyshelf.codec.Codec instance"
    )
