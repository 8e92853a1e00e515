"""Encoded records <-> JSON objects: shared by the file backend and export/import.

Both formats carry records as the codec wrote them (a tag and a payload, see
``docs/encoding.md``), never as decoded Python values: nothing is decoded on
the way, so every type, custom codec tags and byte-exact payloads (and hence
checksums and compare-and-swap equality) survive. ``docs/file.md`` specifies
the JSON form; in short:

* ``"tag"``: the codec tag;
* ``"value"``: the payload when JSON can hold it exactly: ``null``, an
  integer, a finite float, a string; for the JSON tags ``j`` and ``x`` the
  payload document itself, embedded (payload = its compact JSON);
* ``"bytes"``: any other byte payload, standard base64 (``y`` values, pickles,
  custom binary tags, and ``j``/``x`` payloads that would not re-serialise to
  the very same bytes);
* ``"float"``: ``"nan"``, ``"inf"`` or ``"-inf"`` (only custom codecs store
  such payloads; keyshelf's own use tag ``F`` with a string);
* ``"metadata"``: the user metadata: a plain JSON object (the ``j`` form),
  ``{"$ext": {...}}`` (the extended-JSON ``x`` form), or ``{"$raw": base64}``;
  absent when there is none;
* ``"expires_at"``: absolute expiry, integer milliseconds since the Unix
  epoch; absent when the key never expires.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from typing import Any

import orjson

from .codec import (
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
)
from .records import Write

_EMBEDDED = (TAG_JSON, TAG_EXT)
# The payload type each of keyshelf's own tags stores (docs/encoding.md).
_PAYLOAD_TYPES: dict[str, tuple[type, ...]] = {
    TAG_NONE: (type(None),),
    TAG_BOOL: (int,),
    TAG_INT: (int,),
    TAG_BIGINT: (str,),
    TAG_FLOAT: (float,),
    TAG_SPECIAL_FLOAT: (str,),
    TAG_STR: (str,),
    TAG_BYTES: (bytes,),
    TAG_JSON: (bytes,),
    TAG_EXT: (bytes,),
    TAG_PICKLE: (bytes,),
}
_I64 = (-(2**63), 2**63 - 1)
_SCALARS = frozenset((str, int, float))
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
# Instants must fit a signed 64-bit millisecond column on every backend.
_MAX_MS = 2**63 - 1


class FormatError(ValueError):
    """A JSON record is malformed; the message says which field and why."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, field: str) -> bytes:
    if not isinstance(text, str):
        raise FormatError(f"{field} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"{field} is not valid base64: {exc}") from None


def _embeddable(data: bytes) -> Any:
    """The JSON value ``data`` holds if re-serialising it gives the same bytes.

    Returns ``_NO`` otherwise (not JSON, too deep for orjson, or written
    differently, e.g. with whitespace). The value is checked one level deeper
    than it is used, because a record object wraps it.
    """
    try:
        value = orjson.loads(data)
        if orjson.dumps([value]) == b"[" + data + b"]":
            return value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    return _NO


_NO: Any = object()


def payload_fields(tag: str, payload: Payload) -> dict[str, Any]:
    """The JSON fields (``value``, ``bytes`` or ``float``) of one payload."""
    if payload is None or type(payload) is str or type(payload) is int:
        return {"value": payload}
    if type(payload) is float:
        if math.isfinite(payload):
            return {"value": payload}
        return {"float": repr(payload)}
    data = payload if type(payload) is bytes else bytes(payload)  # type: ignore[arg-type]
    if tag in _EMBEDDED:
        value = _embeddable(data)
        if value is not _NO:
            return {"value": value}
    return {"bytes": _b64(data)}


def payload_from(obj: dict[str, Any], tag: str) -> Payload:
    """Rebuild the payload from a record object's ``value``/``bytes``/``float``."""
    has_value, has_bytes, has_float = "value" in obj, "bytes" in obj, "float" in obj
    if has_value + has_bytes + has_float != 1:
        raise FormatError('a record needs exactly one of "value", "bytes" or "float"')
    if has_value:
        value = obj["value"]
        if tag in _EMBEDDED:
            try:
                return orjson.dumps(value)
            except orjson.JSONEncodeError as exc:
                raise FormatError(f'"value" cannot be re-serialised: {exc}') from None
        if value is None or type(value) in _SCALARS:
            return value  # type: ignore[no-any-return]
        raise FormatError(
            f'"value" of a {tag!r} record must be null, a number or a string, '
            f"not {type(value).__name__}"
        )
    if has_bytes:
        return _unb64(obj["bytes"], '"bytes"')
    text = obj["float"]
    if text not in _SPECIAL:
        raise FormatError('"float" must be "nan", "inf" or "-inf"')
    return _SPECIAL[text]


def metadata_field(meta: bytes | None) -> dict[str, Any]:
    """``{"metadata": ...}`` for encoded user metadata, ``{}`` for none."""
    if meta is None:
        return {}
    data = bytes(meta)
    kind, body = data[:1], data[1:]
    if kind in (b"j", b"x"):
        value = _embeddable(body)
        if type(value) is dict:
            # A plain ("j") metadata object is never a one-key "$..." object,
            # so the wrapper below cannot be mistaken for user metadata.
            return {"metadata": value if kind == b"j" else {"$ext": value}}
    return {"metadata": {"$raw": _b64(data)}}


def metadata_from(obj: dict[str, Any]) -> bytes | None:
    """Encoded user metadata from a record object's ``metadata`` field."""
    value = obj.get("metadata")
    if value is None:
        return None
    if type(value) is not dict:
        raise FormatError('"metadata" must be an object')
    if len(value) == 1:
        (name,) = value
        if name == "$raw":
            return _unb64(value[name], '"metadata" $raw')
        if name == "$ext":
            if type(value[name]) is not dict:
                raise FormatError('"metadata" $ext must hold an object')
            return b"x" + orjson.dumps(value[name])
        if name.startswith("$"):
            raise FormatError(f'unknown "metadata" form {name!r}')
    if not value:
        return None
    return b"j" + orjson.dumps(value)


def instant_from(value: object, field: str, *, iso: bool = False) -> int:
    """An instant in integer milliseconds; with ``iso``, ISO 8601 text too."""
    if type(value) is int and 0 <= value <= _MAX_MS:
        return value
    if iso and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise FormatError(f"{field} is not an ISO 8601 date and time: {value!r}") from None
        if moment.tzinfo is None:
            raise FormatError(f"{field} must include a time zone offset (e.g. Z): {value!r}")
        return math.ceil(moment.timestamp() * 1000)
    raise FormatError(f"{field} must be a non-negative integer of milliseconds, got {value!r}")


def write_fields(
    tag: str, payload: Payload, expires_at: int | None, meta: bytes | None
) -> dict[str, Any]:
    """The JSON fields of a record's tag, payload, expiry and metadata."""
    fields: dict[str, Any] = {"tag": tag, **payload_fields(tag, payload)}
    if expires_at is not None:
        fields["expires_at"] = expires_at
    fields.update(metadata_field(meta))
    return fields


def write_from(obj: object, *, iso: bool = False) -> Write:
    """Rebuild tag, payload, expiry and metadata from a record object."""
    if type(obj) is not dict:
        raise FormatError("a record must be a JSON object")
    tag = obj.get("tag")
    if not isinstance(tag, str) or not tag or "\x00" in tag:
        raise FormatError('"tag" must be a non-empty string')
    payload = payload_from(obj, tag)
    _check_payload(tag, payload)
    expires = obj.get("expires_at")
    expires_at = None if expires is None else instant_from(expires, '"expires_at"', iso=iso)
    return Write(tag, payload, expires_at, metadata_from(obj))


def _check_payload(tag: str, payload: Payload) -> None:
    """Refuse a payload of the wrong kind for one of keyshelf's own tags."""
    if len(tag) != 1:
        return  # a custom codec's tag: any payload kind
    kinds = _PAYLOAD_TYPES.get(tag)
    if kinds is None:
        raise FormatError(f"unknown tag {tag!r} (one-letter tags are keyshelf's own)")
    if type(payload) not in kinds:
        raise FormatError(f"a {tag!r} record cannot hold a {type(payload).__name__} payload")
    if tag == TAG_BOOL and payload not in (0, 1):
        raise FormatError(f"a 'b' record holds 0 or 1, not {payload!r}")
    if tag == TAG_INT and not _I64[0] <= payload <= _I64[1]:  # type: ignore[operator]
        raise FormatError(f"an 'i' record holds a signed 64-bit integer, not {payload!r}")
