"""What the async and the sync Redis backends share: no I/O, no redis import.

* :class:`RedisSettings` turns a ``redis://``, ``rediss://`` or ``unix://``
  URL plus options into client keyword arguments, refusing what cannot work.
* :class:`Layout` names the Redis keys of a namespace (see below).
* :func:`to_redis` / :func:`from_redis` convert encoded values to and from
  the two hash fields that hold them.
* The Lua scripts, each one atomic on the server, read from ``lua/*.lua``.

Key layout
----------

With the default prefix ``keyshelf``, namespace ``default`` and key
``user:1``::

    keyshelf:{default}:user:1    HASH  the record (fields below)
    keyshelf:{default}#keys      ZSET  every key of the namespace, score 0 (lex index)
    keyshelf:{default}#ttl       ZSET  keys with an expiry, scored by expiry (server ms)

The namespace sits between braces, percent-encoded so that it never holds a
brace (``%`` -> ``%25``, ``{`` -> ``%7B``, ``}`` -> ``%7D``); the prefix may not
hold braces either. The first ``}`` therefore ends the namespace, a data key
continues with ``:`` and bookkeeping keys with ``#``: no (namespace, key) pair
can produce the name of another pair, of a bookkeeping key, or of a key of
another prefix. The braces are also a Redis Cluster hash tag: every key of one
namespace lives in one slot, so every script below touches one slot only
(scripts that walk an index derive record names from it, in the same slot),
which is what lets the backend run on a cluster (``cluster=true``).

Record hash fields:

====  ===============================================================
``t``  payload kind + value tag: ``n`` None, ``i`` int, ``f`` float,
       ``s`` str, ``b`` bytes, then the codec tag (``"ii"``, ``"sF"``...)
``v``  the payload: ints as Redis integers (so ``HINCRBY`` works), floats
       as shortest round-trip text, str as UTF-8, bytes raw
``m``  encoded user metadata (absent when there is none)
``c``  created_at (ms, the store's clock)
``u``  updated_at (ms)
``n``  version
====  ===============================================================

Expiry is native: the hash carries a Redis TTL, so Redis alone decides when a
key is gone (one clock: the server's). The ``#ttl`` index exists only to find
the leftover ``#keys`` entries of expired keys, which scripts remove lazily
("tidying"); it is never used to decide liveness.
"""

from __future__ import annotations

import hashlib
import math
from importlib.resources import files
from typing import Any, NamedTuple
from urllib.parse import SplitResult, unquote

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
from ..errors import InvalidURLError, SerializationError
from ..options import MAX_SECONDS, as_bool, as_number, as_str, refuse_unknown
from ..patterns import Matcher, compile_pattern
from ..records import Record, Value

DEFAULT_PREFIX = "keyshelf"
DEFAULT_SOCKET_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0

#: Keys fetched per server round trip when listing, counting or sizing.
CHUNK = 1000
#: Attempts of an optimistic (WATCH) transaction before giving up.
WATCH_ATTEMPTS = 100

_SSL_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = ("none", "optional", "required")


# --------------------------------------------------------------------------
# URL and options
# --------------------------------------------------------------------------


class RedisSettings(NamedTuple):
    """Everything ``create()`` needs, validated."""

    prefix: str
    location: str  # redis://host:port/db, never the password
    transport: str  # "tcp", "ssl" or "unix": picks the connection class
    connection_kwargs: dict[str, Any]  # for redis-py's connection class
    max_connections: int | None  # pool size (None: the API's default); callers beyond wait
    pool_timeout: float  # how long they wait before BackendUnavailableError
    cluster: bool  # connect with redis-py's RedisCluster client

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``RedisCluster`` (the URL's node seeds the topology)."""
        kwargs = {k: v for k, v in self.connection_kwargs.items() if k != "db"}
        if self.transport == "ssl":
            kwargs["ssl"] = True
        # Per node; redis-py's async cluster client fails beyond it rather than
        # waiting, so the default leaves it unbounded.
        kwargs["max_connections"] = self.max_connections or 2**31
        return kwargs


# Database numbers are C ints on the server. A pool holds one slot per allowed
# connection, so an absurd max_connections would exhaust memory before any use.
_MAX_DB = 2**31 - 1
_MAX_CONNECTIONS = 100_000


def parse_settings(url: SplitResult, options: dict[str, Any]) -> RedisSettings:
    """Validate the URL and the backend options; raise InvalidURLError if unusable.

    Consumes the options it knows from ``options`` and refuses any other.
    """
    scheme = url.scheme.lower()
    kwargs: dict[str, Any] = {}
    try:
        username = unquote(url.username) if url.username else None
        password = unquote(url.password) if url.password else None
        port = url.port
    except ValueError as exc:
        raise InvalidURLError(f"Bad Redis URL {_redact(url)!r}: {exc}") from None
    if scheme == "unix":
        path = unquote(url.path)
        if not path or path == "/":
            raise InvalidURLError(
                f"A unix:// Redis URL needs the socket path (unix:///run/redis.sock), "
                f"got {_redact(url)!r}"
            )
        if url.hostname:
            raise InvalidURLError(
                f"A unix:// Redis URL takes no host: use unix:///path/to/redis.sock, "
                f"got {_redact(url)!r}"
            )
        kwargs["path"] = path
        db = 0
    else:
        kwargs["host"] = url.hostname or "localhost"
        kwargs["port"] = 6379 if port is None else port
        db = _db_from_path(url)
    if "db" in options:
        db = as_number("db", options.pop("db"), integer=True, minimum=-1, maximum=_MAX_DB)
    kwargs["db"] = db
    if "username" in options:
        username = as_str("username", options.pop("username"))
    if "password" in options:
        password = as_str("password", options.pop("password"))
    if username is not None:
        kwargs["username"] = username
    if password is not None:
        kwargs["password"] = password
    kwargs["socket_timeout"] = as_number(
        "socket_timeout", options.pop("socket_timeout", DEFAULT_SOCKET_TIMEOUT), maximum=MAX_SECONDS
    )
    kwargs["socket_connect_timeout"] = as_number(
        "socket_connect_timeout",
        options.pop("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        maximum=MAX_SECONDS,
    )
    max_connections = None
    if "max_connections" in options:
        max_connections = as_number(
            "max_connections",
            options.pop("max_connections"),
            integer=True,
            maximum=_MAX_CONNECTIONS,
        )
    pool_timeout = as_number(
        "pool_timeout", options.pop("pool_timeout", kwargs["socket_timeout"]), maximum=MAX_SECONDS
    )
    if "health_check_interval" in options:
        kwargs["health_check_interval"] = as_number(
            "health_check_interval",
            options.pop("health_check_interval"),
            minimum=-1,
            maximum=MAX_SECONDS,
        )
    if "client_name" in options:
        kwargs["client_name"] = as_str("client_name", options.pop("client_name"))
    if scheme == "rediss":
        for name in _SSL_OPTIONS:
            if name in options:
                kwargs[name] = as_str(name, options.pop(name))
        reqs = kwargs.get("ssl_cert_reqs", "required")
        if reqs not in _CERT_REQS:
            raise InvalidURLError(
                f"Option ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, got {reqs!r}"
            )
    else:
        for name in _SSL_OPTIONS:
            if name in options:
                raise InvalidURLError(f"Option {name} needs a rediss:// (TLS) URL")
    prefix = check_prefix(options.pop("prefix", DEFAULT_PREFIX))
    # Opening a Redis store creates nothing (keys appear with the first write),
    # so create=False opens it as usual: there is no missing store to refuse.
    as_bool("create", options.pop("create", True))
    if "readonly" in options:
        raise InvalidURLError(
            f"Option readonly is not available for {scheme}:// stores (Redis has no read-only "
            "mode for keyshelf): connect as a Redis user whose ACL allows reads only instead"
        )
    cluster = as_bool("cluster", options.pop("cluster", False))
    if cluster and scheme == "unix":
        raise InvalidURLError(
            "A Redis Cluster is reached over TCP: use a redis:// or rediss:// URL"
        )
    if cluster and db != 0:
        raise InvalidURLError(f"A Redis Cluster has only database 0, got database {db}")
    refuse_unknown(scheme, options)
    if scheme == "unix":
        location = f"unix://{kwargs['path']}?db={db}"
    else:
        host = kwargs["host"]
        shown = f"[{host}]" if ":" in host else host
        location = f"{scheme}://{shown}:{kwargs['port']}/{db}"
        if cluster:
            location += "?cluster=true"
    transport = {"unix": "unix", "rediss": "ssl"}.get(scheme, "tcp")
    return RedisSettings(
        prefix, location, transport, kwargs, max_connections, pool_timeout, cluster
    )


def _db_from_path(url: SplitResult) -> int:
    path = url.path.strip("/")
    if not path:
        return 0
    if not path.isdigit() or not path.isascii() or int(path[:12]) > _MAX_DB:
        raise InvalidURLError(
            f"The path of a Redis URL is the database number (redis://host:6379/0), "
            f"got {_redact(url)!r}"
        )
    return int(path)


def _redact(url: SplitResult) -> str:
    if url.password is None:
        return url.geturl()
    netloc = url.netloc.rpartition("@")[2]
    user = url.username or ""
    return url._replace(netloc=f"{user}:***@{netloc}").geturl()


def check_prefix(prefix: object) -> str:
    """The ``prefix`` option: a non-empty printable string without braces."""
    text = as_str("prefix", prefix)
    if "{" in text or "}" in text:
        raise InvalidURLError(
            f"Option prefix must not contain braces (they delimit the namespace), got {text!r}"
        )
    if not text.isprintable():
        raise InvalidURLError(f"Option prefix must be printable text, got {text!r}")
    return text


# --------------------------------------------------------------------------
# Key layout
# --------------------------------------------------------------------------


class Space(NamedTuple):
    """The Redis names of one namespace."""

    base: str  # data key = base + key
    catalog: str  # ZSET of every key (the lex index), "#keys"
    expiring: str  # ZSET of the keys with an expiry, "#ttl"


def glob_escape(text: str) -> str:
    """Escape ``text`` for Redis's MATCH glob (every character literal)."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


class Layout:
    """Names every Redis key of one prefix; see the module docstring."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._spaces: dict[str, Space] = {}
        head = glob_escape(prefix) + ":{*}"
        #: SCAN MATCH patterns for every namespace's index / ttl set.
        self.index_match = head + "#keys"
        self.ttl_match = head + "#ttl"
        self.any_match = glob_escape(prefix) + ":{*"

    def space(self, ns: str) -> Space:
        found = self._spaces.get(ns)
        if found is None:
            if len(self._spaces) > 4096:
                self._spaces.clear()
            head = f"{self.prefix}:{{{_brace_safe(ns)}}}"
            found = Space(head + ":", head + "#keys", head + "#ttl")
            self._spaces[ns] = found
        return found

    def namespace_of(self, name: bytes | str, suffix: str) -> str | None:
        """The namespace whose bookkeeping key is ``name`` (``suffix`` "#keys"/"#ttl")."""
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        head = self.prefix + ":{"
        if not text.startswith(head) or not text.endswith("}" + suffix):
            return None
        inner = text[len(head) : -len(suffix) - 1]
        if "}" in inner or "{" in inner or not inner:
            return None
        return unquote(inner)


def _brace_safe(ns: str) -> str:
    return ns.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def prefix_only(matcher: Matcher) -> bool:
    """True if the pattern means exactly "starts with ``matcher.prefix``"."""
    if matcher.separator is not None or matcher.literal or matcher.match_all:
        return False
    pattern = matcher.pattern
    if not pattern.endswith("*") or pattern.endswith("**"):
        return False
    head = compile_pattern(pattern[:-1])
    return head.literal and head.prefix == matcher.prefix


def lex_range(prefix: str, after: str | None, upper: str | None) -> tuple[str, str]:
    """ZRANGEBYLEX bounds for keys starting with ``prefix``, strictly after ``after``.

    Code-point order equals UTF-8 byte order, which is how Redis compares
    members, so the range holds exactly the keys in that order.
    """
    low = "[" + prefix if prefix else "-"
    if after is not None and after >= prefix:
        low = "(" + after
    high = "(" + upper if upper is not None else "+"
    return low, high


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


def at_for(expires_at: int | None) -> str:
    """Absolute ``PEXPIREAT`` instant (ms) of a copied record; "" = none."""
    return "" if expires_at is None else str(expires_at)


#: Oldest server version the scripts (ZMSCORE, PEXPIRETIME fallback) and SCAN TYPE need.
MIN_SERVER_VERSION = (6, 2)


def server_problem(info: dict[str, Any], clustered: object, settings: RedisSettings) -> str | None:
    """Why the server described by ``INFO server``/``INFO cluster`` cannot serve; None if it can.

    Returns ``"version: ..."`` for a server that is too old and ``"mode: ..."``
    for a cluster node opened without ``cluster=true``.
    """
    version = str(info.get("redis_version", ""))
    numbers = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if version and numbers < MIN_SERVER_VERSION:
        return (
            f"version: Redis server {settings.location} runs version {version}; keyshelf needs "
            f"Redis {'.'.join(map(str, MIN_SERVER_VERSION))} or later"
        )
    if clustered and not settings.cluster:
        return (
            f"mode: Redis server {settings.location} is a Redis Cluster node: open it with the "
            "option cluster=true"
        )
    return None


# --------------------------------------------------------------------------
# Lua scripts
# --------------------------------------------------------------------------
#
# The scripts live in ``lua/`` next to this module, as package data: each file
# starts with its KEYS, ARGV and reply. A script's source is the shared
# prelude (``_prelude.lua``), the helpers it names (``_float.lua``,
# ``_size.lua``) and its own file, read once when this module is imported.


class Script(NamedTuple):
    """A Lua script, loaded when a store opens and run by EVALSHA."""

    name: str
    source: str
    sha: str


_LUA = files("keyshelf.backends").joinpath("lua")


def _lua(name: str) -> str:
    return _LUA.joinpath(name + ".lua").read_text(encoding="utf-8")


_PRELUDE = _lua("_prelude")


def _script(name: str, *helpers: str) -> Script:
    source = "".join([_PRELUDE, *map(_lua, helpers), _lua(name)])
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


GET_RECORD = _script("get_record")
GET_MANY = _script("get_many")
PUT = _script("put")
PUT_MANY = _script("put_many")
PUT_RECORDS = _script("put_records")
DELETE = _script("delete")
SET_EXPIRY = _script("set_expiry")
INCREMENT = _script("increment", "_float")
APPEND = _script("append")
COMPARE_AND_SWAP = _script("compare_and_swap")
WRITE = _script("write")
SCAN = _script("scan")
TIDY = _script("tidy")
SIZES = _script("sizes", "_size")
SIZE_CHUNK = _script("size_chunk", "_size")
CLEAR_RANGE = _script("clear_range")

#: Every script: loaded (SCRIPT LOAD) when a store opens and again whenever
#: the server reports one missing, so each operation costs one EVALSHA.
SCRIPTS = (
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
