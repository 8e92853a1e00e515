"""A stored value, ``(tag, payload)``: its tags, and what can be said about it undecoded.

Every backend stores a value as the one-letter *tag* and the *payload* that
:class:`keyshelf.codec.Codec` produced. The functions here describe such a
stored value without decoding it, identically on every backend:

* :func:`payload_size`: its documented size in bytes (``stats()``,
  ``total_size()``, size limits);
* :func:`checksum`: a stable digest (exports, ``checksum()``);
* :func:`values_equal`: typed equality (compare-and-swap).

``keyshelf.codec`` re-exports all of them; ``docs/encoding.md`` specifies the
tags and the canonical bytes.
"""

from __future__ import annotations

import struct
from hashlib import blake2b
from typing import TypeAlias

__all__ = [
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
    "Payload",
    "checksum",
    "payload_size",
    "values_equal",
]

Payload: TypeAlias = int | float | str | bytes | None

TAG_NONE = "n"
TAG_BOOL = "b"
TAG_INT = "i"
TAG_BIGINT = "I"
TAG_FLOAT = "f"
TAG_SPECIAL_FLOAT = "F"
TAG_STR = "s"
TAG_BYTES = "y"
TAG_JSON = "j"
TAG_EXT = "x"
TAG_PICKLE = "p"

_pack_double = struct.Struct(">d").pack


def _canonical(tag: str, payload: Payload) -> bytes:
    """The bytes a checksum is computed over (see docs/encoding.md)."""
    if type(payload) is bytes:
        return payload
    if tag == TAG_FLOAT or type(payload) is float:
        return _pack_double(float(payload))  # type: ignore[arg-type]
    if tag in (TAG_INT, TAG_BOOL) or type(payload) is int:
        return str(int(payload)).encode("ascii")  # type: ignore[arg-type]
    if payload is None:
        return b""
    if type(payload) is str:
        return payload.encode("utf-8", "surrogatepass")
    return bytes(payload)  # type: ignore[arg-type]


def payload_size(tag: str, payload: Payload) -> int:
    """The documented size in bytes of a stored value.

    ``n`` 0, ``b`` 1, ``i`` and ``f`` 8, text payloads (``s``, ``F``, ``I``)
    their UTF-8 length, binary payloads (``y``, ``j``, ``x``, ``p``) their
    length. Identical on every backend for the same value.
    """
    t = type(payload)
    if t is bytes:
        return len(payload)  # type: ignore[arg-type]
    if t is str:
        if payload.isascii():  # type: ignore[union-attr]
            return len(payload)  # type: ignore[arg-type]
        return len(payload.encode("utf-8", "surrogatepass"))  # type: ignore[union-attr]
    if payload is None:
        return 0
    if tag == TAG_BOOL:
        return 1
    if t is int or t is float:
        return 8
    return len(bytes(payload))  # type: ignore[arg-type]


def checksum(tag: str, payload: Payload) -> str:
    """A stable digest of a stored value: ``"blake2b:" + 32 hex digits``.

    BLAKE2b with a 16-byte digest over ``tag (UTF-8) + b"\\0" + canonical
    payload bytes``: raw bytes; UTF-8 text; ``int`` as ASCII decimal; ``float``
    as 8 big-endian IEEE 754 bytes; ``None`` as nothing. The same value gives
    the same checksum in every process and on every backend.
    """
    digest = blake2b(tag.encode() + b"\0" + _canonical(tag, payload), digest_size=16)
    return "blake2b:" + digest.hexdigest()


def values_equal(tag_a: str, payload_a: Payload, tag_b: str, payload_b: Payload) -> bool:
    """Typed equality of two stored values, as used by compare-and-swap.

    Equal when the tags are equal and the payloads are equal: ``1``, ``1.0``
    and ``True`` differ (their tags differ), ``nan`` equals ``nan``, ``-0.0``
    differs from ``0.0``, and two dicts with the same items in a different
    order differ (their JSON differs).
    """
    if tag_a != tag_b:
        return False
    if payload_a == payload_b and type(payload_a) is type(payload_b):
        return True
    return _canonical(tag_a, payload_a) == _canonical(tag_b, payload_b)
