"""What the async and the sync Redis backends share besides settings and layout.

* :func:`to_redis` / :func:`from_redis` convert encoded values to and from
  the two hash fields that hold them (the fields are described in
  :mod:`._redis_layout`).
* The Lua scripts, each one atomic on the server, read from ``lua/*.lua``.

The URL and options are validated in :mod:`._redis_settings`, the Redis key
names come from :mod:`._redis_layout`. No I/O, no redis import.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable
from importlib.resources import files
from typing import Any, NamedTuple

from ..codec import (
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
from ..errors import SerializationError
from ..records import Record, Value

#: Keys fetched per server round trip when listing, counting or sizing.
CHUNK = 1000
#: Attempts of an optimistic (WATCH) transaction before giving up.
WATCH_ATTEMPTS = 100


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------

_KINDS: dict[type, str] = {str: "s", int: "i", float: "f", bytes: "b", type(None): "n"}


def to_redis(value: Value) -> tuple[str, Any]:
    """``(tag, payload)`` -> the ``t`` and ``v`` hash fields."""
    tag, payload = value
    kind = _KINDS.get(type(payload))
    if kind is None:
        if isinstance(payload, bool):
            return "i" + tag, int(payload)
        if isinstance(payload, bytearray | memoryview):
            return "b" + tag, bytes(payload)
        raise SerializationError(
            f"Value is not JSON serializable: codec payload of type "
            f"{type(payload).__name__} for tag {tag!r} cannot be stored"
        )
    if kind == "n":
        return "n" + tag, b""
    if kind == "f" and not math.isfinite(payload):  # type: ignore[arg-type]
        return "f" + tag, repr(payload)
    return kind + tag, payload


def _text(data: bytes) -> str:
    return data.decode("utf-8")


def _raw(data: bytes) -> bytes:
    return data


def _none(data: bytes) -> None:
    return None


_DECODERS: dict[bytes, tuple[str, Any]] = {
    b"s" + TAG_STR.encode(): (TAG_STR, _text),
    b"i" + TAG_INT.encode(): (TAG_INT, int),
    b"b" + TAG_JSON.encode(): (TAG_JSON, _raw),
    b"f" + TAG_FLOAT.encode(): (TAG_FLOAT, float),
    b"i" + TAG_BOOL.encode(): (TAG_BOOL, int),
    b"b" + TAG_BYTES.encode(): (TAG_BYTES, _raw),
    b"b" + TAG_EXT.encode(): (TAG_EXT, _raw),
    b"n" + TAG_NONE.encode(): (TAG_NONE, _none),
    b"s" + TAG_SPECIAL_FLOAT.encode(): (TAG_SPECIAL_FLOAT, _text),
    b"s" + TAG_BIGINT.encode(): (TAG_BIGINT, _text),
    b"b" + TAG_PICKLE.encode(): (TAG_PICKLE, _raw),
}
_KIND_DECODERS: dict[int, Any] = {
    ord("s"): _text,
    ord("i"): int,
    ord("f"): float,
    ord("b"): _raw,
    ord("n"): _none,
}


def from_redis(t: bytes, v: bytes | None) -> Value:
    """The ``t`` and ``v`` hash fields -> ``(tag, payload)``."""
    known = _DECODERS.get(t)
    data = b"" if v is None else v
    if known is not None:
        return known[0], known[1](data)
    decode = _KIND_DECODERS.get(t[0]) if t else None
    if decode is None:
        raise SerializationError(f"Corrupt stored value: unknown Redis type field {t!r:.40}")
    payload: Payload = decode(data)
    return t[1:].decode("utf-8"), payload


def tag_of(t: bytes) -> str:
    """The codec tag named by a ``t`` hash field, without decoding any payload."""
    known = _DECODERS.get(t)
    return known[0] if known is not None else t[1:].decode("utf-8", "replace")


def record_from_reply(reply: list[Any], now: int) -> Record | None:
    """A :data:`GET_RECORD` reply (t, v, m, c, u, n, expires_at) -> Record or None.

    Liveness is the server's to decide (its clock expires the key), so a
    record the server returns is live, whatever the store's clock says.
    """
    if not reply or reply[0] is None:
        return None
    t, v, meta, created, updated, version, expires_at = reply
    expires = None if expires_at < 0 else int(expires_at)
    tag, payload = from_redis(t, v)
    return Record(
        tag,
        payload,
        expires,
        None if meta is None else bytes(meta),
        int(created),
        int(updated),
        int(version),
    )


def px_for(expires_at: int | None, now: int) -> str:
    """Relative PX (ms) for an absolute expiry taken on the store's clock; "" = none.

    The store computes ``expires_at = now + whole milliseconds of the TTL``,
    so this is exactly that whole number: the server applies it to its own
    clock (``PEXPIRE``), and the key lives that many milliseconds on the
    server, never more. A TTL below 1 ms gives ``"0"``: the key is already
    expired, and the scripts' ``PEXPIRE key 0`` deletes it on the spot (the
    write still returns what it would have, like on every other backend).
    """
    if expires_at is None:
        return ""
    return str(max(expires_at - now, 0))


def _field_bytes(v: Any) -> bytes:
    """A hash field's bytes as redis-py would send them (floats and ints by ``repr``)."""
    if type(v) is bytes:
        return v
    if type(v) is str:
        return v.encode()
    return repr(v).encode()


_TAG_HEADS: dict[str, bytes] = {}
_LENGTH = struct.Struct(">I").pack


def _tag_head(t: str) -> bytes:
    head = _TAG_HEADS.get(t)
    if head is None:
        data = t.encode()
        if len(data) > 255:
            raise SerializationError(f"Codec tag too long for Redis: {t!r:.40}")
        head = bytes((len(data),)) + data
        if len(_TAG_HEADS) < 1024:
            _TAG_HEADS[t] = head
    return head


def pack_items(items: Iterable[tuple[str, Value]]) -> bytes:
    """The ``items`` argument of :data:`PUT_MANY`: each value's ``t`` and ``v``
    fields as Lua's ``struct.unpack('>Bc0I4c0')`` reads them, in order.

    One argument for a whole batch: redis-py's cost is per argument, far
    above the script's cost to unpack (docs/redis.md).
    """
    parts: list[bytes] = []
    for _key, value in items:
        t, v = to_redis(value)
        data = _field_bytes(v)
        parts += (_tag_head(t), _LENGTH(len(data)), data)
    return b"".join(parts)


def at_for(expires_at: int | None) -> str:
    """Absolute ``PEXPIREAT`` instant (ms) of a copied record; "" = none."""
    return "" if expires_at is None else str(expires_at)


# --------------------------------------------------------------------------
# Lua scripts
# --------------------------------------------------------------------------
#
# The scripts live in ``lua/`` next to this module, as package data: each file
# starts with its KEYS, ARGV and reply. A script's source is the shared
# prelude (``_prelude.lua``), the helpers it names (``_float.lua``,
# ``_size.lua``) and its own file, read once when this module is imported.


#: ``numkeys`` of EVALSHA as bytes, for the usual counts (see :data:`Script.digest`).
NUMKEYS = tuple(str(n).encode() for n in range(256))


class Script(NamedTuple):
    """A Lua script, loaded when a store opens and run by EVALSHA."""

    name: str
    source: str
    sha: str
    #: ``sha`` as the bytes sent (redis-py passes bytes through untouched).
    digest: bytes = b""


_LUA = files("keyshelf.backends").joinpath("lua")


def _lua(name: str) -> str:
    return _LUA.joinpath(name + ".lua").read_text(encoding="utf-8")


_PRELUDE = _lua("_prelude")


def _script(name: str, *helpers: str) -> Script:
    source = "".join([_PRELUDE, *map(_lua, helpers), _lua(name)])
    sha = hashlib.sha1(source.encode()).hexdigest()
    return Script(name, source, sha, sha.encode())


GET_RECORD = _script("get_record")
GET_MANY = _script("get_many")
PUT = _script("put")
PUT_MANY = _script("put_many")
PUT_RECORDS = _script("put_records")
DELETE = _script("delete")
SET_EXPIRY = _script("set_expiry")
INCREMENT = _script("increment", "_float")
COMMIT = _script("commit", "_float")
APPEND = _script("append")
COMPARE_AND_SWAP = _script("compare_and_swap")
WRITE = _script("write")
SCAN = _script("scan")
TIDY = _script("tidy")
SIZES = _script("sizes", "_size")
SIZE_CHUNK = _script("size_chunk", "_size")
CLEAR_RANGE = _script("clear_range")
#: Marks the feed hash (KEYS[1]) so that the scripts of one MULTI share a revision.
FEED_JOIN = Script(
    "feed_join",
    "if redis.call('HGET', KEYS[1], 'on') == '1' then redis.call('HSET', KEYS[1], 'j', '1') end",
    "",
)

#: The scripts that may record changes: their last two KEYS are the feed's
#: hash and stream (on a cluster the caller first makes sure a namespace's
#: feed is on when the store's is).
FEED_SCRIPTS = frozenset(
    script.name
    for script in (
        PUT,
        PUT_MANY,
        PUT_RECORDS,
        DELETE,
        SET_EXPIRY,
        INCREMENT,
        COMMIT,
        APPEND,
        COMPARE_AND_SWAP,
        WRITE,
        SCAN,
        TIDY,
        SIZE_CHUNK,
        CLEAR_RANGE,
    )
)

#: Every script: loaded (SCRIPT LOAD) when a store opens and again whenever
#: the server reports one missing, so each operation costs one EVALSHA.
SCRIPTS = (
    COMMIT,
    GET_RECORD,
    GET_MANY,
    PUT,
    PUT_MANY,
    PUT_RECORDS,
    DELETE,
    SET_EXPIRY,
    INCREMENT,
    APPEND,
    COMPARE_AND_SWAP,
    WRITE,
    SCAN,
    TIDY,
    SIZES,
    SIZE_CHUNK,
    CLEAR_RANGE,
)
